// Package fault makes the worker fail on purpose, to test redelivery and
// dead-lettering end to end (like podinfo's fault injection). Off by default.
//
// Injected failures are transient (answered RETRY), except DropTitle, which
// stands for a bug that redelivery cannot fix (answered DROP, so the event
// goes to the dead letters; restarting without it is "fixing the cause").
package fault

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/taskevents/taskevents/worker/internal/handler"
	"github.com/taskevents/taskevents/worker/internal/taskevent"
)

// ErrInjected is the error of every injected failure; its text is the
// reason the delivery log shows.
var ErrInjected = handler.Transient(errors.New("fault injection"))

// ErrInjectedPermanent is the error of FAULT_DROP_TITLE.
var ErrInjectedPermanent = handler.Permanent(errors.New("fault injection: title matches FAULT_DROP_TITLE"))

// Config mirrors the FAULT_* settings.
type Config struct {
	RetryRate  float64       // share of deliveries answered RETRY, at random
	RetryFirst int           // the first N deliveries of each event are answered RETRY
	Delay      time.Duration // added to every delivery
	DropTitle  string        // tasks whose title contains it are answered DROP
}

// Enabled reports whether any fault is configured.
func (c Config) Enabled() bool {
	return c.RetryRate > 0 || c.RetryFirst > 0 || c.Delay > 0 || c.DropTitle != ""
}

// maxTracked bounds the per-event attempt counters. Events whose redelivery
// never comes would otherwise pile up; when the map is full it is cleared,
// which at worst gives a few events extra RETRYs. Fault injection is a test
// tool, so that is fine.
const maxTracked = 100_000

type injector struct {
	next handler.Handler
	cfg  Config
	rand func() float64 // a float in [0,1); tests replace it

	mu       sync.Mutex
	attempts map[string]int
}

// Wrap returns next with the configured faults in front of it.
func Wrap(next handler.Handler, cfg Config) handler.Handler {
	return &injector{next: next, cfg: cfg, rand: rand.Float64, attempts: make(map[string]int)}
}

func (i *injector) Handle(ctx context.Context, ev taskevent.Event) error {
	if i.cfg.Delay > 0 {
		t := time.NewTimer(i.cfg.Delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	if i.cfg.DropTitle != "" && strings.Contains(ev.Task.Title, i.cfg.DropTitle) {
		return ErrInjectedPermanent
	}
	if i.cfg.RetryFirst > 0 && i.failFirst(ev.Key()) {
		return ErrInjected
	}
	if i.cfg.RetryRate > 0 && i.rand() < i.cfg.RetryRate {
		return ErrInjected
	}
	err := i.next.Handle(ctx, ev)
	if err == nil && i.cfg.RetryFirst > 0 {
		i.forget(ev.Key())
	}
	return err
}

// failFirst counts one delivery of key and reports whether it is among the
// first RetryFirst ones.
func (i *injector) failFirst(key string) bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	n := i.attempts[key] + 1
	if n > i.cfg.RetryFirst {
		// Keep the count until the event succeeds, so a real failure after
		// the injected ones does not restart the injected series.
		return false
	}
	if len(i.attempts) >= maxTracked {
		clear(i.attempts)
	}
	i.attempts[key] = n
	return true
}

func (i *injector) forget(key string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	delete(i.attempts, key)
}
