package harness

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Poll calls check every interval until it returns nil, returns an error made by Stop, or
// ctx ends (or within passes, when within is not 0). A check that is not there yet says
// why in its error; when Poll gives up, its error names the last of those reasons, which is
// what a person debugging a slow start needs. Callers add what they waited for and, for a
// process, its log tail.
func Poll(ctx context.Context, within, interval time.Duration, check func(ctx context.Context) error) error {
	if within > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, within)
		defer cancel()
	}
	start := time.Now()
	var last error
	timer := time.NewTimer(interval)
	defer timer.Stop()
	for ctx.Err() == nil {
		err := check(ctx)
		if err == nil {
			return nil
		}
		if stop := (*stopError)(nil); errors.As(err, &stop) {
			return stop.err
		}
		last = err
		timer.Reset(interval)
		select {
		case <-ctx.Done():
		case <-timer.C:
		}
	}
	took := time.Since(start).Round(time.Millisecond)
	if last == nil {
		return fmt.Errorf("%w after %s", ctx.Err(), took)
	}
	return fmt.Errorf("%w after %s (last: %w)", ctx.Err(), took, last)
}

// Stop wraps err so that Poll returns it at once instead of trying again: for a condition
// that can no longer come true, such as the process that was to answer having exited.
func Stop(err error) error { return &stopError{err} }

type stopError struct{ err error }

func (s *stopError) Error() string { return s.err.Error() }
func (s *stopError) Unwrap() error { return s.err }

// exitedErr is a Stop error when p has exited (with its log tail), nil while it runs; the
// first thing the check of a wait for a starting process asks.
func (p *Process) exitedErr(before string) error {
	if exited, _ := p.Exited(); exited {
		return Stop(fmt.Errorf("%s exited before it %s:\n%s", p.Name, before, p.Tail(30)))
	}
	return nil
}
