// Package publish is the publisher's one path from a task to the broker. An
// event goes to the sidecar at once, alone, when fewer than MaxInFlight
// publishes are in flight; otherwise it queues, and the next free sender takes
// what is queued, up to MaxBatch events, in one bulk publish. An event the
// sidecar did not accept is retried alone, with backoff, until its deadline.
//
// There is no linger timer: at low load every event goes alone through the
// single publish API; under load the batch grows with the queue, and the
// sidecar does one request's work for many. PUBLISH_COALESCE=false is the
// same path with no limit on publishes in flight, so nothing ever queues.
package publish

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskevents/taskevents/kit/jsonstr"
	"github.com/taskevents/taskevents/kit/sidecar"
)

// EventTypeTaskCreated is both the payload's event_type and the CloudEvent type.
const EventTypeTaskCreated = "task.created"

// TaskCreated is the event payload; the worker decodes the same three fields.
type TaskCreated struct {
	EventType string `json:"event_type"`
	TaskID    string `json:"task_id"`
	Title     string `json:"title"`
}

// NewTaskCreated builds the event for a new task.
func NewTaskCreated(taskID, title string) TaskCreated {
	return TaskCreated{EventType: EventTypeTaskCreated, TaskID: taskID, Title: title}
}

// TraceContext is the W3C trace context of the incoming request, forwarded to
// the sidecar so the publish span (and the CloudEvent's traceparent) joins
// the caller's trace instead of starting a new one.
type TraceContext struct {
	TraceParent string
	TraceState  string
}

// Topic is where events go; *sidecar.Topic is the real one.
type Topic interface {
	Publish(ctx context.Context, m sidecar.Message) error
	PublishBulk(ctx context.Context, ms []sidecar.Message) []error
}

// Observer counts publish calls to the sidecar (the real one is
// *metrics.Metrics). Its methods must be cheap: they run on every publish.
type Observer interface {
	// PublishCall records one call to the single or bulk publish API that
	// carried entries events, of which daprd accepted accepted.
	PublishCall(bulk bool, entries, accepted int, took time.Duration)
	// PublishRetry records an attempt after an event's first.
	PublishRetry()
}

type noObserver struct{}

func (noObserver) PublishCall(bool, int, int, time.Duration) {}
func (noObserver) PublishRetry()                             {}

// Options configure a Publisher.
type Options struct {
	// PubSubName and Topic name the topic in log lines.
	PubSubName, Topic string
	// MaxBatch caps the events of one bulk publish (PUBLISH_BATCH_MAX).
	MaxBatch int
	// MaxInFlight is how many publishes (single or bulk) may be in flight at
	// once (PUBLISH_MAX_IN_FLIGHT); 0 is no limit, and then nothing queues.
	MaxInFlight int
	// PublishTimeout bounds each event's publish from the moment it is
	// handed over, queueing and retries included (PUBLISH_TIMEOUT).
	PublishTimeout time.Duration
	// AttemptTimeout bounds one HTTP attempt, so that a single hung
	// connection cannot use the whole budget. Default: PublishTimeout/2.
	AttemptTimeout time.Duration
	// Backoff returns the wait before retry n (n >= 1). Default:
	// Exponential(50ms, 1s). Tests inject a tiny one.
	Backoff func(n int) time.Duration
	Logger  zerolog.Logger
	// Observer is told about every publish call; default: nobody.
	Observer Observer
	// Traced says that publishes carry a span in their context (tracing is
	// on): the outcome is recorded on it and its trace id logged. Off, the
	// span is not looked up, which would cost an allocation a publish.
	Traced bool
}

// errQueued is the last error of an event whose deadline passed before a
// sender was free to take it.
var errQueued = fmt.Errorf("still queued behind publishes in flight: %w", context.DeadlineExceeded)

// Publisher is safe for concurrent use; Close drains it.
type Publisher struct {
	topic Topic
	o     Options

	mu       sync.Mutex
	idle     *sync.Cond // signalled when nothing is in flight any more
	inFlight int
	queue    []*pending // in arrival order
}

// entry is one event on its way, and when its request asked, so that its
// log line times the whole publish, queueing included.
type entry struct {
	ev    TaskCreated
	trace TraceContext
	start time.Time
}

// pending is a queued entry and the channel its Publish call waits on.
type pending struct {
	entry
	deadline time.Time
	done     chan outcome // buffered: a sender never blocks on it
	// taken and abandoned are guarded by Publisher.mu: a sender took the
	// entry, or its caller gave up waiting before that.
	taken, abandoned bool
}

// outcome is how an entry's first attempt went: in a request of batchSize
// entries, after attempts attempts (0 when it was never sent), with err nil
// (accepted), a *sidecar.ConfigError, or an error worth retrying.
type outcome struct {
	attempts, batchSize int
	err                 error
}

// New returns a Publisher that sends to topic.
func New(topic Topic, o Options) *Publisher {
	if o.PublishTimeout <= 0 {
		o.PublishTimeout = 5 * time.Second
	}
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = o.PublishTimeout / 2
	}
	if o.Backoff == nil {
		o.Backoff = Exponential(50*time.Millisecond, time.Second)
	}
	if o.Observer == nil {
		o.Observer = noObserver{}
	}
	o.MaxBatch = max(o.MaxBatch, 1)
	p := &Publisher{topic: topic, o: o}
	p.idle = sync.NewCond(&p.mu)
	return p
}

// Publish returns nil once the sidecar accepted ev (204). Otherwise it
// returns a *sidecar.ConfigError (the sidecar refused; retrying will not
// help) or a *sidecar.UnavailableError (not accepted before the deadline;
// safe to retry). Every attempt carries the same cloudevent.id, the task id,
// so a retry after an ambiguous failure is a duplicate that subscribers
// recognise, not a new event.
func (p *Publisher) Publish(ctx context.Context, ev TaskCreated, trace TraceContext) error {
	ctx, cancel := context.WithTimeout(ctx, p.o.PublishTimeout)
	defer cancel()
	e := entry{ev: ev, trace: trace, start: time.Now()}

	p.mu.Lock()
	if p.o.MaxInFlight <= 0 || p.inFlight < p.o.MaxInFlight {
		p.inFlight++
		p.mu.Unlock()
		err := p.attempt(ctx, e)
		if batch := p.next(); batch != nil {
			go p.send(batch)
		}
		return p.finish(ctx, e, outcome{attempts: 1, batchSize: 1, err: err})
	}
	q := &pending{entry: e, done: make(chan outcome, 1)}
	q.deadline, _ = ctx.Deadline()
	p.queue = append(p.queue, q)
	p.mu.Unlock()

	select {
	case o := <-q.done:
		return p.finish(ctx, e, o)
	case <-ctx.Done():
	}
	p.mu.Lock()
	taken := q.taken
	q.abandoned = !taken
	p.mu.Unlock()
	if taken {
		// In flight: the attempt ends by this event's deadline, and its
		// answer says whether the event was published.
		return p.finish(ctx, e, <-q.done)
	}
	err := errQueued
	if errors.Is(ctx.Err(), context.Canceled) {
		err = ctx.Err()
	}
	return p.finish(ctx, e, outcome{err: err})
}

// Close waits until every queued and in-flight event has been sent.
func (p *Publisher) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.inFlight > 0 {
		p.idle.Wait()
	}
}

// next is called when a publish in flight is done: it returns up to MaxBatch
// queued events, oldest first, for the same slot, or frees the slot when
// nothing is queued.
func (p *Publisher) next() []*pending {
	p.mu.Lock()
	defer p.mu.Unlock()
	var batch []*pending
	if len(p.queue) > 0 {
		batch = make([]*pending, 0, min(len(p.queue), p.o.MaxBatch))
	}
	for len(p.queue) > 0 && len(batch) < p.o.MaxBatch {
		q := p.queue[0]
		p.queue[0] = nil
		p.queue = p.queue[1:]
		if !q.abandoned {
			q.taken = true
			batch = append(batch, q)
		}
	}
	if len(batch) == 0 {
		batch = nil
		if p.inFlight--; p.inFlight == 0 {
			p.idle.Broadcast()
		}
	}
	return batch
}

// send sends batches until the queue is empty.
func (p *Publisher) send(batch []*pending) {
	for ; batch != nil; batch = p.next() {
		p.sendBatch(batch)
	}
}

// sendBatch makes one attempt for the batch, ending by the earliest
// deadline in it, and hands each entry its outcome.
func (p *Publisher) sendBatch(batch []*pending) {
	first := slices.MinFunc(batch, func(a, b *pending) int { return a.deadline.Compare(b.deadline) })
	ctx, cancel := context.WithDeadline(context.Background(), first.deadline)
	defer cancel()
	if len(batch) == 1 {
		batch[0].done <- outcome{attempts: 1, batchSize: 1, err: p.attempt(ctx, batch[0].entry)}
		return
	}
	ms := make([]sidecar.Message, len(batch))
	buf := make([]byte, 0, len(batch)*(96+len(batch[0].ev.Title)))
	for i, q := range batch {
		start := len(buf)
		buf = appendEvent(buf, q.ev)
		ms[i] = message(q.entry, buf[start:len(buf):len(buf)])
	}
	ctx, cancelAttempt := context.WithTimeout(ctx, p.o.AttemptTimeout)
	defer cancelAttempt()
	started := time.Now()
	errs := p.topic.PublishBulk(ctx, ms)
	accepted := 0
	for i, q := range batch {
		if errs[i] == nil {
			accepted++
		}
		q.done <- outcome{attempts: 1, batchSize: len(batch), err: errs[i]}
	}
	p.o.Observer.PublishCall(true, len(batch), accepted, time.Since(started))
}

// attempt makes one attempt to publish e alone: nil on 204, a
// *sidecar.ConfigError, or an error worth retrying.
func (p *Publisher) attempt(ctx context.Context, e entry) error {
	ctx, cancel := context.WithTimeout(ctx, p.o.AttemptTimeout)
	defer cancel()
	started := time.Now()
	err := p.topic.Publish(ctx, message(e, appendEvent(make([]byte, 0, 64+len(e.ev.TaskID)+len(e.ev.Title)), e.ev)))
	accepted := 0
	if err == nil {
		accepted = 1
	}
	p.o.Observer.PublishCall(false, 1, accepted, time.Since(started))
	return err
}

func message(e entry, data []byte) sidecar.Message {
	return sidecar.Message{Data: data, ID: e.ev.TaskID, Type: EventTypeTaskCreated, PartitionKey: e.ev.TaskID,
		TraceParent: e.trace.TraceParent, TraceState: e.trace.TraceState}
}

// appendEvent appends the event as JSON by hand (FuzzEncodeEvent checks it
// against encoding/json), with "<" and "&" kept as they are so that titles
// stay readable in the broker: reflection was a measurable share of a
// publish's cost.
func appendEvent(b []byte, ev TaskCreated) []byte {
	b = append(b, `{"event_type":`...)
	b = jsonstr.Append(b, ev.EventType)
	b = append(b, `,"task_id":`...)
	b = jsonstr.Append(b, ev.TaskID)
	b = append(b, `,"title":`...)
	b = jsonstr.Append(b, ev.Title)
	return append(b, '}')
}

// finish completes a publish whose first attempt went as o says: it logs
// the outcome, or retries e alone with backoff until ctx's deadline, and
// returns nil, a *sidecar.ConfigError or a *sidecar.UnavailableError.
func (p *Publisher) finish(ctx context.Context, e entry, o outcome) error {
	attempts, err := o.attempts, o.err
	var span trace.Span // the publish span, when tracing is on
	if p.o.Traced {
		span = trace.SpanFromContext(ctx)
	}
	var last *sidecar.UnavailableError
	for {
		if err == nil {
			p.logPublish(zerolog.InfoLevel, span, e, "published", attempts, o.batchSize).Msg("task event published")
			return nil
		}
		var ce *sidecar.ConfigError
		if errors.As(err, &ce) {
			l := p.logPublish(zerolog.ErrorLevel, span, e, "rejected", attempts, o.batchSize).
				Int("status", ce.Status).Str("error", ce.Message)
			if ce.Code != "" {
				l = l.Str("sidecar_error_code", ce.Code)
			}
			l.Msg("sidecar rejected the task event; fix the configuration")
			return ce
		}
		if !errors.As(err, &last) {
			last = &sidecar.UnavailableError{Err: err}
		}
		if ctx.Err() != nil {
			break
		}
		wait := p.o.Backoff(max(attempts, 1))
		// Stop when the wait alone would cross the deadline: an attempt that
		// cannot start in time only delays the 503.
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) <= wait {
			break
		}
		p.o.Logger.Debug().Str("task_id", e.ev.TaskID).Int("attempt", attempts).Err(err).
			Dur("backoff", wait).Msg("publish attempt failed; retrying")
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		if ctx.Err() != nil {
			break
		}
		attempts++
		p.o.Observer.PublishRetry()
		err = p.attempt(ctx, e)
	}

	ue := &sidecar.UnavailableError{Attempts: attempts, Err: last.Err, Status: last.Status, Code: last.Code}
	if ctx.Err() != nil && errors.Is(last.Err, context.DeadlineExceeded) {
		ue.Err = fmt.Errorf("no answer within the publish timeout of %s: %w", p.o.PublishTimeout, last.Err)
	}
	l := p.logPublish(zerolog.WarnLevel, span, e, "unavailable", attempts, o.batchSize).Err(ue.Err)
	if ue.Status != 0 {
		l = l.Int("status", ue.Status).Str("sidecar_error_code", ue.Code)
	}
	l.Msg("task event not published; sidecar unavailable")
	return ue
}

// logPublish starts an entry's log line. When span records (tracing is on),
// the line also gets trace_id, and the span the outcome.
func (p *Publisher) logPublish(lvl zerolog.Level, span trace.Span, e entry, outcome string, attempts, batchSize int) *zerolog.Event {
	recording := span != nil && span.IsRecording()
	if recording {
		span.SetAttributes(attribute.String("dapr.publish.outcome", outcome), attribute.Int("dapr.publish.attempts", attempts),
			semconv.MessagingBatchMessageCount(batchSize))
	}
	l := p.o.Logger.WithLevel(lvl).
		Str("task_id", e.ev.TaskID).
		Str("topic", p.o.Topic).
		Str("pubsubname", p.o.PubSubName).
		Str("outcome", outcome).
		Int("attempts", attempts).
		Int("batch_size", batchSize).
		Float64("duration_ms", float64(time.Since(e.start).Microseconds())/1000)
	if e.trace.TraceParent != "" {
		l = l.Str("traceparent", e.trace.TraceParent)
	}
	if recording {
		l = l.Str("trace_id", span.SpanContext().TraceID().String())
	}
	return l
}

// Exponential returns base, 2*base, 4*base, ... capped at maxWait, each with
// "equal jitter" (a random value in [d/2, d]) so that requests failing
// together do not retry in lockstep.
func Exponential(base, maxWait time.Duration) func(int) time.Duration {
	return func(n int) time.Duration {
		d := maxWait
		if n >= 1 && n < 31 {
			d = min(base<<(n-1), maxWait)
		}
		if d <= 0 {
			return 0
		}
		return d/2 + rand.N(d/2+1) //nolint:gosec // G404: jitter, not security
	}
}
