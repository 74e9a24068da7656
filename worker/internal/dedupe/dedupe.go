// Package dedupe remembers which events were handled, so that an at-least-once
// redelivery is acknowledged without doing the work twice.
//
// It is claim-based: a delivery first claims its key, and only the claimant
// runs the handler. That closes the window in which two concurrent deliveries
// of the same event (daprd redelivering while the first attempt is still
// running) would both see "not handled yet".
//
// Memory is bounded: completed keys are forgotten when not seen for the TTL,
// and the least recently seen are evicted beyond maxEntries. Claims in flight
// are never evicted; their number is bounded by concurrent requests. A key is
// held as a 128-bit digest, not as the string: the default window of 100,000
// keys then takes about 8 MB of heap (20 MB with the strings and a
// container/list).
package dedupe

import (
	"context"
	"crypto/sha256"
	"errors"
	"sync"
	"time"

	"github.com/taskevents/taskevents/kit/memstore"
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

// Result is the answer to Claim.
type Result int

const (
	// Claimed means the key is new; the caller handles the event, then calls
	// Complete or Release.
	Claimed Result = iota + 1
	// Done means the event was already handled; the delivery is a duplicate.
	Done
	// InFlight means another delivery of the same event holds the claim.
	InFlight
)

func (r Result) String() string {
	if r < Claimed || r > InFlight {
		return "unknown"
	}
	return [...]string{"claimed", "done", "in-flight"}[r-1]
}

// digest stands for a key; at 128 bits of SHA-256, two keys of one window
// sharing a digest (which would answer an event as a duplicate of another)
// is as likely as guessing a random UUID twice.
type digest [16]byte

func digestOf(key string) digest {
	sum := sha256.Sum256([]byte(key))
	return digest(sum[:16])
}

// Store is safe for concurrent use.
type Store struct {
	mu sync.Mutex
	// claims are the keys in flight: never evicted, never expired, and
	// bounded by the deliveries in flight.
	claims map[digest]struct{}
	// done are the completed keys; seeing one renews it.
	done *memstore.Store[digest, struct{}]
}

// New returns an empty store. now is the clock (time.Now outside tests).
func New(maxEntries int, ttl time.Duration, now func() time.Time) *Store {
	return &Store{
		claims: make(map[digest]struct{}),
		done:   memstore.New[digest, struct{}](memstore.Options{MaxEntries: maxEntries, TTL: ttl, Now: now, Refresh: true}),
	}
}

// Claim claims key unless it is done or claimed by someone else. The
// memory store never fails.
func (s *Store) Claim(_ context.Context, k string) (Result, error) {
	key := digestOf(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.claims[key]; ok {
		return InFlight, nil
	}
	if _, ok := s.done.Get(key); ok {
		return Done, nil
	}
	s.claims[key] = struct{}{}
	return Claimed, nil
}

// Complete records key as handled. The handled task is not kept: the
// memory store is for runs without a state store.
func (s *Store) Complete(_ context.Context, k string, _ Handled) error {
	key := digestOf(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.claims, key)
	s.done.Put(key, struct{}{})
	return nil
}

// Release gives up a claim, so a redelivery of the event is handled again.
// It does nothing if key is already done.
func (s *Store) Release(_ context.Context, k string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.claims, digestOf(k))
	return nil
}

// Len is the number of keys held, completed and in flight.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.claims) + s.done.Len()
}
