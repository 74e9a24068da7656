package handler

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/taskevents/taskevents/worker/internal/taskevent"
)

func TestClassification(t *testing.T) {
	base := errors.New("boom")
	tests := []struct {
		name          string
		err           error
		wantPermanent bool
		wantTransient bool
	}{
		{"plain error is not permanent", base, false, false},
		{"permanent", Permanent(base), true, false},
		{"wrapped permanent", fmt.Errorf("saving: %w", Permanent(base)), true, false},
		{"transient", Transient(base), false, true},
		{"context error", context.DeadlineExceeded, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsPermanent(tt.err); got != tt.wantPermanent {
				t.Errorf("IsPermanent = %v", got)
			}
			if got := errors.Is(tt.err, ErrTransient); got != tt.wantTransient {
				t.Errorf("Is(ErrTransient) = %v", got)
			}
			if !errors.Is(tt.err, tt.err) || (!errors.Is(tt.err, context.DeadlineExceeded) && !errors.Is(tt.err, base)) {
				t.Errorf("classification lost the cause")
			}
			if tt.err.Error() != base.Error() && tt.name != "wrapped permanent" && tt.name != "context error" {
				t.Errorf("message changed to %q", tt.err.Error())
			}
		})
	}
	if Permanent(nil) != nil || Transient(nil) != nil {
		t.Error("marking nil must stay nil")
	}
}

func TestAccept(t *testing.T) {
	if err := (Accept{}).Handle(context.Background(), taskevent.Event{}); err != nil {
		t.Fatal(err)
	}
}
