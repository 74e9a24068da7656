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

	"github.com/rs/zerolog"

	"github.com/taskevents/taskevents/kit/logging"
	"github.com/taskevents/taskevents/kit/problem"
	"github.com/taskevents/taskevents/kit/tracing"
	"github.com/taskevents/taskevents/worker/internal/deadletter"
	"github.com/taskevents/taskevents/worker/internal/metrics"
	"github.com/taskevents/taskevents/worker/internal/taskevent"
)

// deadLetter answers POST /events/deadletter: it keeps what reached the
// dead-letter topic. It answers SUCCESS to everything it kept, garbage
// included (a broken message must not loop), and RETRY only when the dead
// letter could not be saved: then daprd and the broker keep it until the
// state store is back.
func deadLetter(s *Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		_, span := s.serverSpan(r, "/events/deadletter", start)
		body, readErr := io.ReadAll(http.MaxBytesReader(w, r.Body, s.MaxEventBytes))
		meta, task := taskevent.Peek(r.Header, body)
		outcome, reason := metrics.OutcomeSuccess, ""
		if readErr != nil {
			reason = "body could not be read in full: " + readErr.Error()
		}
		id := deadletter.IDFor(meta.ID, body)
		if s.DeadLetters != nil {
			e := deadletter.Entry{ID: id, EventID: meta.ID, Topic: meta.Topic, PubsubName: meta.PubsubName, Type: meta.Type,
				TaskID: task.TaskID, ContentType: r.Header.Get("Content-Type"), ReceivedAt: start.UTC()}
			if json.Valid(body) && bytes.HasPrefix(bytes.TrimSpace(body), []byte("{")) {
				e.Envelope = body
			} else {
				e.Raw = body
			}
			if err := s.DeadLetters.Keep(context.WithoutCancel(r.Context()), e); err != nil {
				outcome, reason = metrics.OutcomeRetry, "keeping the dead letter: "+err.Error()
			}
		}
		if outcome == metrics.OutcomeSuccess {
			s.Metrics.DeadLetter()
		}
		ev := s.Logger.Warn().
			Str("event_id", meta.ID).
			Str("deadletter_id", id).
			Str("type", meta.Type).
			Str("source", meta.Source).
			Str("topic", meta.Topic).
			Str("pubsubname", meta.PubsubName).
			Str("traceparent", meta.Traceparent).
			Bool("kept", s.DeadLetters != nil && outcome == metrics.OutcomeSuccess).
			Str("outcome", outcome).
			Float64("duration_ms", float64(time.Since(start))/float64(time.Millisecond))
		strIf(ev, "task_id", task.TaskID)
		strIf(ev, "reason", reason)
		strIf(ev, "trace_id", tracing.TraceID(span))
		ev.Msg(MsgDeadLetter)
		writeStatus(w, outcome)
		endDelivery(&delivery{meta: meta, task: task, outcome: outcome, reason: reason, span: span})
	})
}

// admin serves the dead-letter admin routes: list, inspect, replay and
// discard. They live on the event port, which only the pod's own sidecar
// reaches (loopback in the chart) and which takes the same token as the
// event routes; an operator reaches it with kubectl port-forward.
type admin struct {
	kept *deadletter.Store // nil: dead letters are only logged
	log  zerolog.Logger
}

// route answers with h, turning the store's errors into problems.
func (a admin) route(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.kept == nil {
			problem.Write(w, problem.New(problemDeadLettersNotKept, "Dead letters are not kept", http.StatusNotImplemented,
				"This worker runs without a state store (STATE_STORE is empty), so dead letters are only logged and counted."))
			return
		}
		err := h(w, r)
		switch {
		case err == nil:
		case errors.Is(err, deadletter.ErrNotFound):
			problem.Write(w, problem.Blank(http.StatusNotFound, "No dead letter has this id; GET /admin/deadletters lists them."))
		case errors.Is(err, deadletter.ErrNotReplayable):
			problem.Write(w, problem.New(problemNotReplayable, "Dead letter cannot be replayed", http.StatusUnprocessableEntity,
				"The dead letter is not a JSON CloudEvent, so it cannot be republished as it was; inspect it and discard it."))
		default:
			a.log.Error().Err(err).Msg("dead-letter store call failed")
			w.Header().Set("Retry-After", "1")
			problem.Write(w, problem.Blank(http.StatusServiceUnavailable,
				fmt.Sprintf("The state store or the sidecar did not answer: %s", logging.Truncate(err.Error(), 300))))
		}
	})
}

func (a admin) list(w http.ResponseWriter, r *http.Request) error {
	entries, err := a.kept.List(r.Context())
	if err == nil {
		writeValue(w, http.StatusOK, map[string]any{"count": len(entries), "deadletters": entries})
	}
	return err
}

func (a admin) get(w http.ResponseWriter, r *http.Request) error {
	e, err := a.kept.Get(r.Context(), r.PathValue("id"))
	if err == nil {
		writeValue(w, http.StatusOK, e)
	}
	return err
}

// replay republishes a dead letter to the topic it was first published to
// (the envelope's topic and pubsubname), with its original id.
func (a admin) replay(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	e, err := a.kept.Get(r.Context(), id)
	if err != nil {
		return err
	}
	pubsub, topic := e.PubsubName, e.Topic
	if q := r.URL.Query().Get("topic"); q != "" {
		topic = q
	}
	if pubsub == "" || topic == "" {
		problem.Write(w, problem.New(problemNotReplayable, "Dead letter cannot be replayed", http.StatusUnprocessableEntity,
			"The dead letter does not say which pub/sub component and topic it came from; pass ?topic=<topic>."))
		return nil
	}
	if _, err := a.kept.Replay(r.Context(), id, pubsub, topic); err != nil {
		return err
	}
	a.log.Info().Str("deadletter_id", id).Str("event_id", e.EventID).Str("pubsubname", pubsub).Str("topic", topic).
		Str("task_id", e.TaskID).Msg("DEAD LETTER REPLAYED")
	writeValue(w, http.StatusAccepted, map[string]string{"id": id, "event_id": e.EventID, "topic": topic, "status": "replayed"})
	return nil
}

func (a admin) discard(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	_, err := a.kept.Get(r.Context(), id)
	if err == nil {
		err = a.kept.Delete(r.Context(), id)
	}
	if err == nil {
		a.log.Info().Str("deadletter_id", id).Msg("DEAD LETTER DISCARDED")
		w.WriteHeader(http.StatusNoContent)
	}
	return err
}

func writeValue(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		problem.Write(w, problem.Blank(http.StatusInternalServerError, "The response could not be encoded."))
		return
	}
	writeJSON(w, status, string(b))
}
