package harness

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestPoll(t *testing.T) {
	notYet := errors.New("not yet")
	gone := errors.New("process exited")
	for _, tc := range []struct {
		name      string
		within    time.Duration
		check     func(calls int) error
		wantCalls int // exact number of checks, or 0 to only require more than one
		wantIs    []error
		wantText  string // substring of the error; "" means success
	}{
		{name: "done at once", within: time.Second,
			check: func(int) error { return nil }, wantCalls: 1},
		{name: "done on the third try", within: time.Second,
			check: func(calls int) error {
				if calls < 3 {
					return notYet
				}
				return nil
			}, wantCalls: 3},
		{name: "stop gives up at once with the cause", within: time.Second,
			check: func(int) error { return Stop(gone) }, wantCalls: 1,
			wantIs: []error{gone}, wantText: "process exited"},
		{name: "timeout names the last reason", within: 50 * time.Millisecond,
			check:  func(calls int) error { return fmt.Errorf("try %d: %w", calls, notYet) },
			wantIs: []error{context.DeadlineExceeded, notYet}, wantText: "(last: try "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := Poll(context.Background(), tc.within, 5*time.Millisecond, func(context.Context) error {
				calls++
				return tc.check(calls)
			})
			switch {
			case tc.wantText == "" && err != nil:
				t.Fatalf("Poll = %v, want nil", err)
			case tc.wantText != "" && (err == nil || !strings.Contains(err.Error(), tc.wantText)):
				t.Fatalf("Poll = %v, want an error containing %q", err, tc.wantText)
			}
			for _, target := range tc.wantIs {
				if !errors.Is(err, target) {
					t.Errorf("Poll = %v, not errors.Is %v", err, target)
				}
			}
			if tc.wantCalls > 0 && calls != tc.wantCalls {
				t.Errorf("check ran %d times, want %d", calls, tc.wantCalls)
			}
			if tc.wantCalls == 0 && calls < 2 {
				t.Errorf("check ran %d times before the deadline, want several", calls)
			}
		})
	}
}

func TestPollCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := Poll(ctx, 0, time.Millisecond, func(context.Context) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Poll on a canceled context = %v, want context.Canceled", err)
	}
}
