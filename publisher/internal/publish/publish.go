// Package coalesce sends task events that arrive while a publish is in
// flight together, in one bulk publish, instead of one request each.
//
// There is no linger timer: a sender takes whatever is queued the moment it
// is free. At low load that is one event, sent through the single publish
// API exactly as without coalescing; under load the batch grows with the
// queue, up to a cap, and the sidecar does one request's work for many.
package coalesce

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/taskevents/taskevents/publisher/internal/sidecar"
)

// Sender is what the coalescer needs from the sidecar client.
type Sender interface {
	// PublishOne makes one attempt to publish e alone.
	PublishOne(ctx context.Context, e sidecar.Entry) error
	// PublishBulk makes one attempt to publish es in one request and
	// returns one error per entry, in order.
	PublishBulk(ctx context.Context, es []sidecar.Entry) []error
	// Finish logs an entry's outcome, or retries it alone until ctx's
	// deadline, and returns the error its caller should map.
	Finish(ctx context.Context, e sidecar.Entry, o sidecar.Outcome) error
}

// Options size a Coalescer.
type Options struct {
	// MaxBatch caps the entries of one bulk publish (PUBLISH_BATCH_MAX).
	MaxBatch int
	// MaxInFlight is how many publishes (single or bulk) may be in flight
	// at once (PUBLISH_MAX_IN_FLIGHT).
	MaxInFlight int
	// PublishTimeout bounds each event's publish from the moment it is
	// queued, retries included (PUBLISH_TIMEOUT).
	PublishTimeout time.Duration
}

// errQueued is the last error of an event whose deadline passed before a
// sender was free to take it.
var errQueued = fmt.Errorf("still queued behind publishes in flight: %w", context.DeadlineExceeded)

// Coalescer is a sidecar.Publisher that batches concurrent publishes. It is
// safe for concurrent use; Close drains it.
type Coalescer struct {
	send    Sender
	max     int
	timeout time.Duration

	mu     sync.Mutex
	wake   *sync.Cond // signalled when the queue grows or the coalescer closes
	queue  []*pending // in arrival order
	closed bool
	wg     sync.WaitGroup
}

var _ sidecar.Publisher = (*Coalescer)(nil)

// pending is a queued event and the channel its Publish call waits on.
type pending struct {
	entry    sidecar.Entry
	deadline time.Time
	done     chan sidecar.Outcome // buffered: a sender never blocks on it
	// taken and abandoned are guarded by Coalescer.mu: a sender took the
	// entry, or its caller gave up waiting before that.
	taken, abandoned bool
}

// New starts o.MaxInFlight senders.
func New(send Sender, o Options) *Coalescer {
	c := &Coalescer{send: send, max: max(o.MaxBatch, 1), timeout: o.PublishTimeout}
	c.wake = sync.NewCond(&c.mu)
	for range max(o.MaxInFlight, 1) {
		c.wg.Go(c.sender)
	}
	return c
}

// Publish queues ev and returns once the sidecar accepted it (nil) or
// refused it, with the errors sidecar.Client.Publish returns.
func (c *Coalescer) Publish(ctx context.Context, ev sidecar.TaskCreated, trace sidecar.TraceContext) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	p := &pending{entry: sidecar.Entry{Event: ev, Trace: trace, Start: time.Now()}, done: make(chan sidecar.Outcome, 1)}
	p.deadline, _ = ctx.Deadline()

	c.mu.Lock()
	if c.closed {
		// Shutting down: nothing takes from the queue any more, so the
		// event goes alone, as without coalescing.
		c.mu.Unlock()
		return c.send.Finish(ctx, p.entry, sidecar.Outcome{Attempts: 1, BatchSize: 1, Err: c.send.PublishOne(ctx, p.entry)})
	}
	c.queue = append(c.queue, p)
	c.wake.Signal()
	c.mu.Unlock()

	select {
	case o := <-p.done:
		return c.send.Finish(ctx, p.entry, o)
	case <-ctx.Done():
	}
	c.mu.Lock()
	taken := p.taken
	p.abandoned = !taken
	c.mu.Unlock()
	if taken {
		// In flight: the attempt ends by this event's deadline, and its
		// answer says whether the event was published.
		return c.send.Finish(ctx, p.entry, <-p.done)
	}
	err := errQueued
	if ctx.Err() == context.Canceled {
		err = ctx.Err()
	}
	return c.send.Finish(ctx, p.entry, sidecar.Outcome{Attempts: 0, BatchSize: 0, Err: err})
}

// Close stops taking new events into the queue, waits until every queued
// and in-flight event has been sent, and stops the senders. Publish calls
// after Close publish alone.
func (c *Coalescer) Close() {
	c.mu.Lock()
	c.closed = true
	c.wake.Broadcast()
	c.mu.Unlock()
	c.wg.Wait()
}

func (c *Coalescer) sender() {
	for {
		batch := c.take()
		if batch == nil {
			return
		}
		c.sendBatch(batch)
	}
}

// take waits for queued events and returns up to max of them, oldest first,
// or nil once the coalescer is closed and the queue is empty.
func (c *Coalescer) take() []*pending {
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		var batch []*pending
		for len(c.queue) > 0 && len(batch) < c.max {
			p := c.queue[0]
			c.queue[0] = nil
			c.queue = c.queue[1:]
			if p.abandoned {
				continue
			}
			p.taken = true
			batch = append(batch, p)
		}
		if len(batch) > 0 {
			return batch
		}
		if c.closed {
			return nil
		}
		c.wake.Wait()
	}
}

// sendBatch makes one attempt for the batch, ending by the earliest
// deadline in it, and hands each entry its outcome.
func (c *Coalescer) sendBatch(batch []*pending) {
	deadline := batch[0].deadline
	for _, p := range batch[1:] {
		if p.deadline.Before(deadline) {
			deadline = p.deadline
		}
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if len(batch) == 1 {
		batch[0].done <- sidecar.Outcome{Attempts: 1, BatchSize: 1, Err: c.send.PublishOne(ctx, batch[0].entry)}
		return
	}
	entries := make([]sidecar.Entry, len(batch))
	for i, p := range batch {
		entries[i] = p.entry
	}
	errs := c.send.PublishBulk(ctx, entries)
	for i, p := range batch {
		p.done <- sidecar.Outcome{Attempts: 1, BatchSize: len(batch), Err: errs[i]}
	}
}
