package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/taskevents/taskevents/kit/logging"
	"github.com/taskevents/taskevents/kit/problem"
	"github.com/taskevents/taskevents/kit/tracing"
	"github.com/taskevents/taskevents/worker/internal/deadletter"
	"github.com/taskevents/taskevents/worker/internal/metrics"
	"github.com/taskevents/taskevents/worker/internal/taskevent"
)

// handleDeadLetter keeps what reached the dead-letter topic. It answers
// SUCCESS to everything it kept, garbage included (a broken message must not
// loop), and RETRY only when the dead letter could not be saved: then daprd
// and the broker keep it until the state store is back.
func (s *Server) handleDeadLetter(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	span := s.startDeadLetter(r, start)
	body, readErr := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxEventBytes))
	meta, task := taskevent.Peek(r.Header, body)
	outcome, reason := metrics.OutcomeSuccess, ""
	if readErr != nil {
		reason = "body could not be read in full: " + readErr.Error()
	}
	id := deadletter.IDFor(meta.ID, body)
	if s.deadLetters != nil {
		e := deadletter.Entry{ID: id, EventID: meta.ID, Topic: meta.Topic, PubsubName: meta.PubsubName, Type: meta.Type,
			TaskID: task.TaskID, ContentType: r.Header.Get("Content-Type"), ReceivedAt: start.UTC()}
		if json.Valid(body) && bytes.HasPrefix(bytes.TrimSpace(body), []byte("{")) {
			e.Envelope = body
		} else {
			e.Raw = body
		}
		if err := s.deadLetters.Keep(context.WithoutCancel(r.Context()), e); err != nil {
			outcome, reason = metrics.OutcomeRetry, "keeping the dead letter: "+err.Error()
		}
	}
	if outcome == metrics.OutcomeSuccess {
		s.metrics.DeadLetter()
	}
	ev := s.log.Warn().
		Str("event_id", meta.ID).
		Str("deadletter_id", id).
		Str("type", meta.Type).
		Str("source", meta.Source).
		Str("topic", meta.Topic).
		Str("pubsubname", meta.PubsubName).
		Str("traceparent", meta.Traceparent).
		Bool("kept", s.deadLetters != nil && outcome == metrics.OutcomeSuccess).
		Str("outcome", outcome).
		Float64("duration_ms", float64(time.Since(start))/float64(time.Millisecond))
	strIf(ev, "task_id", task.TaskID)
	strIf(ev, "reason", reason)
	strIf(ev, "trace_id", tracing.TraceID(span))
	ev.Msg(MsgDeadLetter)
	writeStatus(w, outcome)
	endDelivery(delivery{meta: meta, task: task, outcome: outcome, reason: reason, span: span})
}

// Admin routes: list, inspect, replay and discard dead letters. They live on
// the event port, which only the pod's own sidecar reaches (loopback in the
// chart) and which takes the same token as the event routes; an operator
// reaches it with kubectl port-forward.

func (s *Server) handleListDeadLetters(w http.ResponseWriter, r *http.Request) {
	if !s.deadLettersKept(w) {
		return
	}
	entries, err := s.deadLetters.List(r.Context())
	if err != nil {
		s.storeProblem(w, err)
		return
	}
	writeValue(w, http.StatusOK, map[string]any{"count": len(entries), "deadletters": entries})
}

func (s *Server) handleGetDeadLetter(w http.ResponseWriter, r *http.Request) {
	if !s.deadLettersKept(w) {
		return
	}
	e, err := s.deadLetters.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		s.storeProblem(w, err)
		return
	}
	writeValue(w, http.StatusOK, e)
}

// handleReplay republishes a dead letter to the topic it was first published
// to (the envelope's topic and pubsubname), with its original id.
func (s *Server) handleReplay(w http.ResponseWriter, r *http.Request) {
	if !s.deadLettersKept(w) {
		return
	}
	id := r.PathValue("id")
	e, err := s.deadLetters.Get(r.Context(), id)
	if err != nil {
		s.storeProblem(w, err)
		return
	}
	pubsub, topic := e.PubsubName, e.Topic
	if q := r.URL.Query().Get("topic"); q != "" {
		topic = q
	}
	if pubsub == "" || topic == "" {
		problem.Write(w, problem.New(problemNotReplayable, "Dead letter cannot be replayed", http.StatusUnprocessableEntity,
			"The dead letter does not say which pub/sub component and topic it came from; pass ?topic=<topic>."))
		return
	}
	if _, err := s.deadLetters.Replay(r.Context(), id, pubsub, topic); err != nil {
		s.storeProblem(w, err)
		return
	}
	s.log.Info().Str("deadletter_id", id).Str("event_id", e.EventID).Str("pubsubname", pubsub).Str("topic", topic).
		Str("task_id", e.TaskID).Msg("DEAD LETTER REPLAYED")
	writeValue(w, http.StatusAccepted, map[string]string{"id": id, "event_id": e.EventID, "topic": topic, "status": "replayed"})
}

func (s *Server) handleDeleteDeadLetter(w http.ResponseWriter, r *http.Request) {
	if !s.deadLettersKept(w) {
		return
	}
	id := r.PathValue("id")
	if _, err := s.deadLetters.Get(r.Context(), id); err != nil {
		s.storeProblem(w, err)
		return
	}
	if err := s.deadLetters.Delete(r.Context(), id); err != nil {
		s.storeProblem(w, err)
		return
	}
	s.log.Info().Str("deadletter_id", id).Msg("DEAD LETTER DISCARDED")
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) deadLettersKept(w http.ResponseWriter) bool {
	if s.deadLetters != nil {
		return true
	}
	problem.Write(w, problem.New(problemDeadLettersNotKept, "Dead letters are not kept", http.StatusNotImplemented,
		"This worker runs without a state store (STATE_STORE is empty), so dead letters are only logged and counted."))
	return false
}

func (s *Server) storeProblem(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, deadletter.ErrNotFound):
		problem.Write(w, problem.Blank(http.StatusNotFound, "No dead letter has this id; GET /admin/deadletters lists them."))
	case errors.Is(err, deadletter.ErrNotReplayable):
		problem.Write(w, problem.New(problemNotReplayable, "Dead letter cannot be replayed", http.StatusUnprocessableEntity,
			"The dead letter is not a JSON CloudEvent, so it cannot be republished as it was; inspect it and discard it."))
	default:
		s.log.Error().Err(err).Msg("dead-letter store call failed")
		w.Header().Set("Retry-After", "1")
		problem.Write(w, problem.Blank(http.StatusServiceUnavailable,
			fmt.Sprintf("The state store or the sidecar did not answer: %s", logging.Truncate(err.Error(), 300))))
	}
}

func writeValue(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		problem.Write(w, problem.Blank(http.StatusInternalServerError, "The response could not be encoded."))
		return
	}
	writeJSON(w, status, string(b))
}
