package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskevents/taskevents/kit/logging"
	"github.com/taskevents/taskevents/kit/tracing"
	"github.com/taskevents/taskevents/worker/internal/bulk"
	"github.com/taskevents/taskevents/worker/internal/dedupe"
	"github.com/taskevents/taskevents/worker/internal/handler"
	"github.com/taskevents/taskevents/worker/internal/metrics"
	"github.com/taskevents/taskevents/worker/internal/taskevent"
)

// Log messages the end-to-end harness and operators search for.
const (
	MsgReceived   = "EVENT RECEIVED"
	MsgRejected   = "EVENT REJECTED"
	MsgDeadLetter = "DEAD LETTER"
)

// maxLoggedTitle keeps a huge title from turning into a huge log line.
const maxLoggedTitle = 256

// daprd compares the status case-sensitively; anything else, even
// "success", means retry (dapr/dapr pkg/runtime/subscription/postman/http/http.go).
var statusBodies = map[string][]byte{
	metrics.OutcomeSuccess: []byte(`{"status":"SUCCESS"}` + "\n"),
	metrics.OutcomeRetry:   []byte(`{"status":"RETRY"}` + "\n"),
	metrics.OutcomeDrop:    []byte(`{"status":"DROP"}` + "\n"),
}

// delivery is what happened to one event on the event route: a request of
// its own, or one entry of a bulk delivery.
type delivery struct {
	// rejected: the envelope could not be parsed, so most fields are unknown.
	rejected  bool
	meta      taskevent.Meta
	task      taskevent.Task
	outcome   string
	duplicate bool
	reason    string
	// entry is set for an entry of a bulk delivery.
	entry *batchEntry
	// span is the delivery's server span; nil with tracing off.
	span trace.Span
}

// handleEvent always answers 200 with a status: daprd retries any other
// code except 404, which it drops without dead-lettering before 1.18.
// A bulk delivery on the same route gets one status per entry (bulk.go).
func (s *Server) handleEvent(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	body, d, ok := s.readBody(w, r)
	if ok && mayBeBatch(r.Header, body) {
		if b, err := bulk.Parse(body); !errors.Is(err, bulk.ErrNotBatch) {
			s.handleBatch(r.Context(), w, r, b, err, start)
			return
		}
	}
	ctx, span := s.startDelivery(r.Context(), r, start)
	if ok {
		d = s.deliverOne(ctx, r.Header, body)
	}
	d.span = span
	took := time.Since(start)
	s.metrics.Delivery(d.outcome, took)
	s.logDelivery(d, took)
	writeStatus(w, d.outcome)
	endDelivery(d)
}

// readBody reads the whole body, up to the larger of the single-event and
// the batch limit (deliverOne holds each event to MAX_EVENT_BYTES). When ok
// is false, d is the answer.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) (body []byte, d delivery, ok bool) {
	limit := max(s.maxEventBytes, s.maxBatchBytes)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		meta, task := taskevent.Peek(r.Header, nil)
		reason := fmt.Sprintf("body exceeds MAX_EVENT_BYTES (%d bytes)", s.maxEventBytes)
		if limit > s.maxEventBytes {
			reason = fmt.Sprintf("body exceeds MAX_BATCH_BYTES (%d bytes), the limit of a bulk delivery; a single event is limited to MAX_EVENT_BYTES (%d bytes)", limit, s.maxEventBytes)
		}
		return nil, delivery{rejected: true, meta: meta, task: task, outcome: metrics.OutcomeDrop, reason: reason}, false
	case err != nil:
		// The connection broke mid-body; the message itself may be fine.
		meta, task := taskevent.Peek(r.Header, nil)
		return nil, delivery{rejected: true, meta: meta, task: task, outcome: metrics.OutcomeRetry,
			reason: "reading body: " + err.Error()}, false
	}
	return body, delivery{}, true
}

// deliverOne parses, claims, handles and records one event. ctx is the
// delivery's request context.
func (s *Server) deliverOne(ctx context.Context, header http.Header, body []byte) delivery {
	d, ev, ok := s.parse(header, body)
	if !ok {
		return d
	}
	return s.process(ctx, d, ev)
}

// parse holds one event to MAX_EVENT_BYTES and parses it. When ok is false,
// d is the answer.
func (s *Server) parse(header http.Header, body []byte) (d delivery, ev taskevent.Event, ok bool) {
	if int64(len(body)) > s.maxEventBytes {
		meta, task := taskevent.Peek(header, nil)
		return delivery{rejected: true, meta: meta, task: task, outcome: metrics.OutcomeDrop,
			reason: fmt.Sprintf("body exceeds MAX_EVENT_BYTES (%d bytes)", s.maxEventBytes)}, ev, false
	}
	ev, err := taskevent.Parse(header, body)
	if err != nil {
		d := delivery{outcome: metrics.OutcomeDrop, reason: err.Error()}
		var perr *taskevent.Error
		if errors.As(err, &perr) {
			d.rejected = perr.Stage == taskevent.StageEnvelope
			d.meta, d.task = perr.Meta, perr.Task
		}
		return d, ev, false
	}
	return delivery{meta: ev.Meta, task: ev.Task}, ev, true
}

// process claims, handles and records a parsed event.
func (s *Server) process(ctx context.Context, d delivery, ev taskevent.Event) delivery {
	key := ev.Key()
	claim, err := s.claim(ctx, key)
	if err != nil {
		// Without the ledger there is no telling whether the event was
		// handled; daprd redelivers once the state store is back.
		d.outcome, d.reason = metrics.OutcomeRetry, "claiming the event in the dedupe ledger: "+err.Error()
		return d
	}
	switch claim {
	case dedupe.Done:
		s.metrics.Duplicate()
		d.duplicate, d.outcome = true, metrics.OutcomeSuccess
		return d
	case dedupe.InFlight:
		// Answering SUCCESS here would ack an event whose handling may still
		// fail; RETRY makes daprd come back after the first attempt settled.
		// claim already waited up to HANDLER_TIMEOUT for that.
		s.metrics.Duplicate()
		d.duplicate, d.outcome = true, metrics.OutcomeRetry
		d.reason = "another delivery of this event is being handled"
		return d
	}

	err = s.invoke(ctx, ev)
	switch {
	case err == nil:
		d.outcome = metrics.OutcomeSuccess
		// The ledger's calls outlive a daprd that hung up: the handler ran,
		// and its record must be written or the claim given back.
		err = s.ledger.Complete(context.WithoutCancel(ctx), key, dedupe.Handled{
			TaskID: ev.Task.TaskID, Title: ev.Task.Title, EventID: ev.ID, EventType: ev.EventType, HandledAt: time.Now().UTC()})
		switch {
		case errors.Is(err, dedupe.ErrAlreadyDone):
			s.metrics.Duplicate()
			d.duplicate = true
		case err != nil:
			s.release(ctx, key)
			d.outcome, d.reason = metrics.OutcomeRetry, "recording the handled task: "+err.Error()
		}
	case handler.IsPermanent(err):
		s.release(ctx, key)
		d.outcome, d.reason = metrics.OutcomeDrop, err.Error()
	default:
		s.release(ctx, key)
		d.outcome, d.reason = metrics.OutcomeRetry, err.Error()
	}
	return d
}

// inFlightPoll is how often a delivery that found its event claimed by
// another one looks again.
const inFlightPoll = 100 * time.Millisecond

// claim claims key; if another delivery holds it, it waits up to
// HANDLER_TIMEOUT for that claim to settle (done, released, or expired
// because its worker died) instead of answering RETRY at once. Each wait
// stretches one of daprd's delivery attempts, so its retry budget outlasts
// the lease of a claim whose worker was killed, and the event is handled
// rather than dead-lettered.
func (s *Server) claim(ctx context.Context, key string) (dedupe.Result, error) {
	// A claim abandoned halfway (daprd hung up) could be written without its
	// TTL; once started, each ledger call runs to its own timeout.
	lctx := context.WithoutCancel(ctx)
	res, err := s.ledger.Claim(lctx, key)
	if err != nil || res != dedupe.InFlight {
		return res, err
	}
	wait, cancel := context.WithTimeout(ctx, s.handlerTimeout)
	defer cancel()
	tick := time.NewTicker(inFlightPoll)
	defer tick.Stop()
	for {
		select {
		case <-wait.Done():
			return dedupe.InFlight, nil
		case <-tick.C:
		}
		if res, err = s.ledger.Claim(lctx, key); err != nil || res != dedupe.InFlight {
			return res, err
		}
	}
}

// release gives the claim back so that a redelivery (or a replay from the
// dead letters) is handled. If that fails, the claim's lease runs out.
func (s *Server) release(ctx context.Context, key string) {
	if err := s.ledger.Release(context.WithoutCancel(ctx), key); err != nil {
		s.log.Warn().Err(err).Str("event_key", key).Msg("could not release the dedupe claim; a redelivery waits for its lease to expire")
	}
}

// invoke runs the handler under HANDLER_TIMEOUT. The request context ends
// early when daprd hangs up or the server stops hard; either way the event
// was not handled and must come back.
func (s *Server) invoke(parent context.Context, ev taskevent.Event) (err error) {
	ctx, cancel := context.WithTimeout(parent, s.handlerTimeout)
	defer cancel()
	defer func() {
		// A panicking handler is a bug that redelivery will not fix; drop the
		// event to the dead-letter topic (it can be replayed after the fix)
		// and keep the claim store consistent.
		if p := recover(); p != nil {
			err = handler.Permanent(fmt.Errorf("handler panicked: %v", p))
		}
	}()
	if s.tracing.Enabled() {
		var span trace.Span
		ctx, span = s.tracing.Tracer().Start(ctx, spanHandlePrefix+ev.EventType)
		defer func() { tracing.Fail(span, err); span.End() }()
	}
	err = s.handler.Handle(ctx, ev)
	if err == nil || handler.IsPermanent(err) || ctx.Err() == nil {
		return err
	}
	if parent.Err() == nil {
		return fmt.Errorf("handler did not finish within HANDLER_TIMEOUT (%s): %w", s.handlerTimeout, err)
	}
	return fmt.Errorf("delivery canceled before the handler finished (daprd hung up or the worker is stopping): %w", err)
}

func (s *Server) logDelivery(d delivery, took time.Duration) {
	durationMS := float64(took) / float64(time.Millisecond)
	if d.rejected {
		e := s.log.Warn()
		strIf(e, "event_id", d.meta.ID)
		strIf(e, "source", d.meta.Source)
		strIf(e, "type", d.meta.Type)
		strIf(e, "topic", d.meta.Topic)
		strIf(e, "pubsubname", d.meta.PubsubName)
		strIf(e, "traceparent", d.meta.Traceparent)
		strIf(e, "trace_id", tracing.TraceID(d.span))
		strIf(e, "task_id", d.task.TaskID)
		d.entry.log(e)
		e.Str("outcome", d.outcome).
			Str("reason", d.reason).
			Float64("duration_ms", durationMS).
			Msg(MsgRejected)
		return
	}
	e := s.log.Info()
	if d.outcome != metrics.OutcomeSuccess {
		e = s.log.Warn()
	}
	e.Str("event_id", d.meta.ID).
		Str("source", d.meta.Source).
		Str("type", d.meta.Type).
		Str("topic", d.meta.Topic).
		Str("pubsubname", d.meta.PubsubName).
		Str("traceparent", d.meta.Traceparent).
		Str("task_id", d.task.TaskID).
		Str("title", logging.Truncate(d.task.Title, maxLoggedTitle)).
		Str("event_type", d.task.EventType).
		Str("outcome", d.outcome).
		Bool("duplicate", d.duplicate).
		Float64("duration_ms", durationMS)
	strIf(e, "trace_id", tracing.TraceID(d.span))
	d.entry.log(e)
	if d.reason != "" {
		e.Str("reason", d.reason)
	}
	e.Msg(MsgReceived)
}

func strIf(e *zerolog.Event, key, val string) {
	if val != "" {
		e.Str(key, val)
	}
}

func writeStatus(w http.ResponseWriter, outcome string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(statusBodies[outcome])
}
