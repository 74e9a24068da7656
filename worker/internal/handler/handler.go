// Package handler is the seam between delivery (HTTP, CloudEvents, dedupe)
// and what the worker does with a task.
//
// Errors decide daprd's next step: a Permanent error means the event can
// never succeed (answer DROP, daprd dead-letters it); any other error is
// transient (answer RETRY, daprd redelivers). Unclassified errors count as
// transient because retrying a poison message costs a few attempts before the
// dead-letter topic, while dropping a good one loses it.
package handler

import (
	"context"
	"errors"

	"github.com/taskevents/taskevents/worker/internal/taskevent"
)

// Handler does the work for one validated event.
type Handler interface {
	Handle(ctx context.Context, ev taskevent.Event) error
}

// Func adapts a function to Handler.
type Func func(ctx context.Context, ev taskevent.Event) error

// Handle calls f.
func (f Func) Handle(ctx context.Context, ev taskevent.Event) error { return f(ctx, ev) }

// ErrPermanent marks failures that redelivery cannot fix.
var ErrPermanent = errors.New("permanent failure")

// ErrTransient marks failures worth retrying. Marking is optional (every
// unmarked error is transient) but says so at the call site.
var ErrTransient = errors.New("transient failure")

type classified struct {
	err  error
	kind error
}

func (c *classified) Error() string   { return c.err.Error() }
func (c *classified) Unwrap() []error { return []error{c.err, c.kind} }

// Permanent marks err as permanent; errors.Is(err, ErrPermanent) reports it.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &classified{err: err, kind: ErrPermanent}
}

// Transient marks err as transient.
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return &classified{err: err, kind: ErrTransient}
}

// IsPermanent reports whether err must not be retried.
func IsPermanent(err error) bool {
	return errors.Is(err, ErrPermanent)
}

// Accept is the default handler: receiving the task is the whole job, as in
// the Python worker we compare against (tools/bench/python). Its record is the "EVENT RECEIVED" line that the delivery
// layer writes for every delivery; it does not log a second line.
type Accept struct{}

// Handle accepts every task.
func (Accept) Handle(context.Context, taskevent.Event) error { return nil }
