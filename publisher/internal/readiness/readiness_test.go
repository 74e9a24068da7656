package readiness_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/taskevents/taskevents/publisher/internal/readiness"
)

// sidecar is a switchable health check.
type sidecar struct {
	mu     sync.Mutex
	err    error
	checks atomic.Int32
}

func (s *sidecar) set(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

func (s *sidecar) check(context.Context) error {
	s.checks.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func waitFor(t *testing.T, p *readiness.Probe, wantReady bool, wantReason string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ready, reason := p.Status()
		if ready == wantReady && (wantReason == "" || reason == wantReason) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("status = %v %q, want %v %q", ready, reason, wantReady, wantReason)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestProbeTransitions(t *testing.T) {
	sc := &sidecar{err: errors.New("connection refused")}
	p := readiness.New(zerolog.Nop())
	if ready, _ := p.Status(); ready {
		t.Fatal("ready before any check")
	}

	var firstReady atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(ctx, 10*time.Millisecond, sc.check, func(context.Context) { firstReady.Add(1) })
	}()

	waitFor(t, p, false, "sidecar not ready: connection refused")
	sc.set(nil)
	waitFor(t, p, true, "ready")
	sc.set(errors.New("gone"))
	waitFor(t, p, false, "sidecar not ready: gone")
	sc.set(nil)
	waitFor(t, p, true, "ready")

	p.Drain()
	waitFor(t, p, false, "draining")
	cancel()
	<-done
	if n := firstReady.Load(); n != 1 {
		t.Errorf("onFirstReady ran %d times, want once", n)
	}
}

func TestProbeChecksImmediatelyAndNotPerStatus(t *testing.T) {
	sc := &sidecar{}
	p := readiness.New(zerolog.Nop())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(ctx, time.Hour, sc.check, nil) // only the immediate first check can run
	}()
	waitFor(t, p, true, "ready")
	for range 100 {
		p.Status()
	}
	cancel()
	<-done
	if n := sc.checks.Load(); n != 1 {
		t.Errorf("sidecar checks = %d, want 1 (Status must not check)", n)
	}
}
