package server

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/taskevents/taskevents/worker/internal/dedupe"
	"github.com/taskevents/taskevents/worker/internal/handler"
	"github.com/taskevents/taskevents/worker/internal/taskevent"
)

// stubLedger answers with fixed results and counts calls.
type stubLedger struct {
	claim              dedupe.Result
	claimErr, complErr error
	completes, release int
}

func (s *stubLedger) Claim(context.Context, string) (dedupe.Result, error) {
	return s.claim, s.claimErr
}
func (s *stubLedger) Complete(context.Context, string, dedupe.Handled) error {
	s.completes++
	return s.complErr
}
func (s *stubLedger) Release(context.Context, string) error { s.release++; return nil }

// What the delivery answers for each ledger outcome: a ledger that cannot
// say whether the event was handled always means RETRY, never SUCCESS.
func TestDeliveryLedgerOutcomes(t *testing.T) {
	boom := errors.New("state store unavailable")
	tests := []struct {
		name          string
		ledger        stubLedger
		handlerErr    error
		want          string
		wantDuplicate bool
		wantCalls     int
		wantRelease   int
	}{
		{"claimed and recorded", stubLedger{claim: dedupe.Claimed}, nil, "SUCCESS", false, 1, 0},
		{"already done", stubLedger{claim: dedupe.Done}, nil, "SUCCESS", true, 0, 0},
		{"in flight elsewhere", stubLedger{claim: dedupe.InFlight}, nil, "RETRY", true, 0, 0},
		{"claim fails", stubLedger{claimErr: boom}, nil, "RETRY", false, 0, 0},
		{"record fails", stubLedger{claim: dedupe.Claimed, complErr: boom}, nil, "RETRY", false, 1, 1},
		{"another delivery recorded it first", stubLedger{claim: dedupe.Claimed, complErr: dedupe.ErrAlreadyDone}, nil, "SUCCESS", true, 1, 0},
		{"handler fails for good", stubLedger{claim: dedupe.Claimed}, handler.Permanent(boom), "DROP", false, 1, 1},
		{"handler fails for now", stubLedger{claim: dedupe.Claimed}, boom, "RETRY", false, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := tt.ledger
			rec := &recorder{do: func(context.Context, taskevent.Event) error { return tt.handlerErr }}
			h := newHarness(t, rec, func(o *Deps) { o.Ledger = &l; o.HandlerTimeout = 300 * time.Millisecond })
			if got := status(t, h.deliver(daprdEnvelope)); got != tt.want {
				t.Fatalf("status = %s, want %s", got, tt.want)
			}
			if rec.count() != tt.wantCalls || l.release != tt.wantRelease {
				t.Errorf("handler calls = %d, releases = %d; want %d, %d", rec.count(), l.release, tt.wantCalls, tt.wantRelease)
			}
			line := h.withMsg(MsgReceived)
			if len(line) != 1 || line[0]["duplicate"] != tt.wantDuplicate {
				t.Errorf("log = %v, want duplicate=%v", line, tt.wantDuplicate)
			}
		})
	}
}
