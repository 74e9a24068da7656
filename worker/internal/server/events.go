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
	start time.Time
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

// events answers POST /events/todo. It always answers 200 with a status:
// daprd retries any other code except 404, which it drops without
// dead-lettering before 1.18. A bulk delivery on the same route gets one
// status per entry (bulk.go).
func events(s *Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := delivery{start: time.Now()}
		body := s.readBody(w, r, &d)
		if d.outcome == "" && mayBeBatch(r.Header, body) {
			if b, err := bulk.Parse(body); !errors.Is(err, bulk.ErrNotBatch) {
				s.batch(w, r, b, err, d.start)
				return
			}
		}
		writeStatus(w, s.deliver(r.Context(), r, d, r.Header, body))
	})
}

// readBody reads the whole body, up to the larger of the single-event and
// the batch limit (parse holds each event to MAX_EVENT_BYTES). When it
// cannot, d says why.
func (s *Deps) readBody(w http.ResponseWriter, r *http.Request, d *delivery) []byte {
	limit := max(s.MaxEventBytes, s.MaxBatchBytes)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err == nil {
		return body
	}
	d.rejected = true
	d.meta, d.task = taskevent.Peek(r.Header, nil)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig) && limit > s.MaxEventBytes:
		d.outcome, d.reason = metrics.OutcomeDrop, fmt.Sprintf("body exceeds MAX_BATCH_BYTES (%d bytes), the limit of a bulk delivery; a single event is limited to MAX_EVENT_BYTES (%d bytes)", limit, s.MaxEventBytes)
	case errors.As(err, &tooBig):
		d.outcome, d.reason = metrics.OutcomeDrop, fmt.Sprintf("body exceeds MAX_EVENT_BYTES (%d bytes)", s.MaxEventBytes)
	default:
		// The connection broke mid-body; the message itself may be fine.
		d.outcome, d.reason = metrics.OutcomeRetry, "reading body: "+err.Error()
	}
	return nil
}

// deliver answers one event, alone in its request or an entry of a bulk
// delivery, with tracing on or off: it parses, claims, handles and records
// the event, then counts it, logs its line and ends its span. d holds what
// is known before: when and how the event came, and its outcome when it
// could not even be read. ctx is the delivery's request context.
func (s *Deps) deliver(ctx context.Context, r *http.Request, d delivery, header http.Header, body []byte) string {
	var ev taskevent.Event
	parsed := d.outcome == "" && s.parse(&d, &ev, header, body)
	if s.Tracing.Enabled() {
		ctx, d.span = s.deliverySpan(ctx, r, &d)
	}
	if parsed {
		s.process(ctx, &d, &ev)
	}
	took := time.Since(d.start)
	s.Metrics.Delivery(d.outcome, took)
	s.logDelivery(&d, took)
	endDelivery(&d)
	return d.outcome
}

// parse holds one event to MAX_EVENT_BYTES and parses it into ev. When it
// cannot, d says why.
func (s *Deps) parse(d *delivery, ev *taskevent.Event, header http.Header, body []byte) bool {
	if int64(len(body)) > s.MaxEventBytes {
		d.meta, d.task = taskevent.Peek(header, nil)
		d.rejected, d.outcome = true, metrics.OutcomeDrop
		d.reason = fmt.Sprintf("body exceeds MAX_EVENT_BYTES (%d bytes)", s.MaxEventBytes)
		return false
	}
	var err error
	if *ev, err = taskevent.Parse(header, body); err != nil {
		d.outcome, d.reason = metrics.OutcomeDrop, err.Error()
		var perr *taskevent.Error
		if errors.As(err, &perr) {
			d.rejected = perr.Stage == taskevent.StageEnvelope
			d.meta, d.task = perr.Meta, perr.Task
		}
		return false
	}
	d.meta, d.task = ev.Meta, ev.Task
	return true
}

// process claims, handles and records a parsed event.
func (s *Deps) process(ctx context.Context, d *delivery, ev *taskevent.Event) {
	key := ev.Key()
	claim, err := s.claim(ctx, key)
	switch {
	case err != nil:
		// Without the ledger there is no telling whether the event was
		// handled; daprd redelivers once the state store is back.
		d.outcome, d.reason = metrics.OutcomeRetry, "claiming the event in the dedupe ledger: "+err.Error()
		return
	case claim == dedupe.Done:
		s.Metrics.Duplicate()
		d.duplicate, d.outcome = true, metrics.OutcomeSuccess
		return
	case claim == dedupe.InFlight:
		// Answering SUCCESS here would ack an event whose handling may still
		// fail; RETRY makes daprd come back after the first attempt settled.
		// claim already waited up to HANDLER_TIMEOUT for that.
		s.Metrics.Duplicate()
		d.duplicate, d.outcome = true, metrics.OutcomeRetry
		d.reason = "another delivery of this event is being handled"
		return
	}

	err = s.invoke(ctx, ev)
	switch {
	case err == nil:
		d.outcome = metrics.OutcomeSuccess
		// The ledger's calls outlive a daprd that hung up: the handler ran,
		// and its record must be written or the claim given back.
		err = s.Ledger.Complete(context.WithoutCancel(ctx), key, dedupe.Handled{
			TaskID: ev.Task.TaskID, Title: ev.Task.Title, EventID: ev.ID, EventType: ev.EventType, HandledAt: time.Now().UTC()})
		switch {
		case errors.Is(err, dedupe.ErrAlreadyDone):
			s.Metrics.Duplicate()
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
func (s *Deps) claim(ctx context.Context, key string) (dedupe.Result, error) {
	// A claim abandoned halfway (daprd hung up) could be written without its
	// TTL; once started, each ledger call runs to its own timeout.
	lctx := context.WithoutCancel(ctx)
	res, err := s.Ledger.Claim(lctx, key)
	if err != nil || res != dedupe.InFlight {
		return res, err
	}
	wait, cancel := context.WithTimeout(ctx, s.HandlerTimeout)
	defer cancel()
	tick := time.NewTicker(inFlightPoll)
	defer tick.Stop()
	for {
		select {
		case <-wait.Done():
			return dedupe.InFlight, nil
		case <-tick.C:
		}
		if res, err = s.Ledger.Claim(lctx, key); err != nil || res != dedupe.InFlight {
			return res, err
		}
	}
}

// release gives the claim back so that a redelivery (or a replay from the
// dead letters) is handled. If that fails, the claim's lease runs out.
func (s *Deps) release(ctx context.Context, key string) {
	if err := s.Ledger.Release(context.WithoutCancel(ctx), key); err != nil {
		s.Logger.Warn().Err(err).Str("event_key", key).Msg("could not release the dedupe claim; a redelivery waits for its lease to expire")
	}
}

// invoke runs the handler under HANDLER_TIMEOUT. The request context ends
// early when daprd hangs up or the server stops hard; either way the event
// was not handled and must come back.
func (s *Deps) invoke(parent context.Context, ev *taskevent.Event) (err error) {
	ctx, cancel := context.WithTimeout(parent, s.HandlerTimeout)
	defer cancel()
	defer func() {
		// A panicking handler is a bug that redelivery will not fix; drop the
		// event to the dead-letter topic (it can be replayed after the fix)
		// and keep the claim store consistent.
		if p := recover(); p != nil {
			err = handler.Permanent(fmt.Errorf("handler panicked: %v", p))
		}
	}()
	if s.Tracing.Enabled() {
		var span trace.Span
		ctx, span = s.Tracing.Tracer().Start(ctx, spanHandlePrefix+ev.EventType)
		defer func() { tracing.Fail(span, err); span.End() }()
	}
	err = s.Handler.Handle(ctx, *ev)
	if err == nil || handler.IsPermanent(err) || ctx.Err() == nil {
		return err
	}
	if parent.Err() == nil {
		return fmt.Errorf("handler did not finish within HANDLER_TIMEOUT (%s): %w", s.HandlerTimeout, err)
	}
	return fmt.Errorf("delivery canceled before the handler finished (daprd hung up or the worker is stopping): %w", err)
}

// logDelivery writes the delivery's one line. A rejected envelope could not
// be read, so its line has only the fields that could.
func (s *Deps) logDelivery(d *delivery, took time.Duration) {
	e, msg := s.Logger.Info(), MsgReceived
	if d.outcome != metrics.OutcomeSuccess {
		e = s.Logger.Warn()
	}
	if d.rejected {
		msg = MsgRejected
	}
	str := func(key, val string) {
		if val != "" || !d.rejected {
			e.Str(key, val)
		}
	}
	str("event_id", d.meta.ID)
	str("source", d.meta.Source)
	str("type", d.meta.Type)
	str("topic", d.meta.Topic)
	str("pubsubname", d.meta.PubsubName)
	str("traceparent", d.meta.Traceparent)
	str("task_id", d.task.TaskID)
	if !d.rejected {
		e.Str("title", logging.Truncate(d.task.Title, maxLoggedTitle)).Str("event_type", d.task.EventType)
	}
	e.Str("outcome", d.outcome)
	if !d.rejected {
		e.Bool("duplicate", d.duplicate)
	}
	e.Float64("duration_ms", float64(took)/float64(time.Millisecond))
	strIf(e, "trace_id", tracing.TraceID(d.span))
	d.entry.log(e)
	strIf(e, "reason", d.reason)
	e.Msg(msg)
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
