package fault

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/taskevents/taskevents/worker/internal/handler"
	"github.com/taskevents/taskevents/worker/internal/taskevent"
)

func ev(id string) taskevent.Event {
	return taskevent.Event{Meta: taskevent.Meta{ID: id, Topic: "task-events", PubsubName: "pubsub"}}
}

type counter struct{ calls int }

func (c *counter) Handle(context.Context, taskevent.Event) error { c.calls++; return nil }

func TestRetryFirst(t *testing.T) {
	next := &counter{}
	h := Wrap(next, Config{RetryFirst: 2})
	ctx := context.Background()
	want := []bool{true, true, false} // failed?
	for i, w := range want {
		err := h.Handle(ctx, ev("a"))
		if got := err != nil; got != w {
			t.Fatalf("delivery %d of a: err = %v, want failure %v", i+1, err, w)
		}
		if err != nil && (!errors.Is(err, ErrInjected) || handler.IsPermanent(err) || err.Error() != "fault injection") {
			t.Fatalf("injected error %v must be transient and read %q", err, "fault injection")
		}
	}
	// Counts are per event: b starts from zero while a is done.
	if err := h.Handle(ctx, ev("b")); err == nil {
		t.Fatal("first delivery of b succeeded")
	}
	if next.calls != 1 {
		t.Errorf("next called %d times, want 1", next.calls)
	}
}

func TestRetryFirstKeepsCountUntilSuccess(t *testing.T) {
	fails := 1
	next := handler.Func(func(context.Context, taskevent.Event) error {
		if fails > 0 {
			fails--
			return errors.New("database down")
		}
		return nil
	})
	h := Wrap(next, Config{RetryFirst: 1})
	ctx := context.Background()
	results := []string{}
	for range 3 {
		err := h.Handle(ctx, ev("a"))
		results = append(results, errString(err))
	}
	want := []string{"fault injection", "database down", ""}
	for i := range want {
		if results[i] != want[i] {
			t.Fatalf("results = %q, want %q", results, want)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestRetryRate(t *testing.T) {
	tests := []struct {
		rate     float64
		draw     float64
		wantFail bool
	}{
		{0.5, 0.49, true},
		{0.5, 0.5, false},
		{1, 0.999, true},
		{0.1, 0.2, false},
	}
	for _, tt := range tests {
		h := Wrap(&counter{}, Config{RetryRate: tt.rate}).(*injector)
		h.rand = func() float64 { return tt.draw }
		err := h.Handle(context.Background(), ev("a"))
		if (err != nil) != tt.wantFail {
			t.Errorf("rate %v draw %v: err = %v", tt.rate, tt.draw, err)
		}
	}
}

func TestDelay(t *testing.T) {
	next := &counter{}
	h := Wrap(next, Config{Delay: 30 * time.Millisecond})
	start := time.Now()
	if err := h.Handle(context.Background(), ev("a")); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 30*time.Millisecond {
		t.Errorf("took %s, want at least the delay", took)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	h = Wrap(next, Config{Delay: time.Hour})
	if err := h.Handle(ctx, ev("a")); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled delay: err = %v, want context.Canceled", err)
	}
	if next.calls != 1 {
		t.Errorf("next called %d times, want 1", next.calls)
	}
}

func TestEnabled(t *testing.T) {
	for cfg, want := range map[Config]bool{
		{}:                   false,
		{RetryRate: 0.1}:     true,
		{RetryFirst: 1}:      true,
		{Delay: time.Second}: true,
	} {
		if cfg.Enabled() != want {
			t.Errorf("%+v.Enabled() = %v", cfg, !want)
		}
	}
}
