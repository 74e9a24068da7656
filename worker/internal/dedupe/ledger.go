package dedupe

import (
	"context"
	"errors"
	"time"
)

// Ledger is where deliveries claim an event and record it as handled.
// Store keeps it in this process; StateLedger keeps it in a Dapr state
// store, where it survives restarts and is shared by replicas.
type Ledger interface {
	// Claim claims key for this delivery unless it is done or claimed.
	Claim(ctx context.Context, key string) (Result, error)
	// Complete records key as handled, together with the handled task,
	// in one write. ErrAlreadyDone means another delivery completed first.
	Complete(ctx context.Context, key string, task Handled) error
	// Release gives up a claim, so that a redelivery is handled again.
	Release(ctx context.Context, key string) error
}

// ErrAlreadyDone is Complete's answer when the event was completed by
// another delivery (one whose claim outlived its lease).
var ErrAlreadyDone = errors.New("event already handled by another delivery")

// Handled is the handled task as the worker records it: the durable effect
// that "handled exactly once" is checked against.
type Handled struct {
	TaskID    string    `json:"task_id"`
	Title     string    `json:"title"`
	EventID   string    `json:"event_id"`
	EventType string    `json:"event_type"`
	HandledAt time.Time `json:"handled_at"`
}
