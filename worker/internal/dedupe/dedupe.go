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
// keys then takes about 14 MB of heap instead of 20.
package dedupe

import (
	"container/list"
	"crypto/sha256"
	"sync"
	"time"
)

// Result is the answer to TryClaim.
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
	switch r {
	case Claimed:
		return "claimed"
	case Done:
		return "done"
	case InFlight:
		return "in-flight"
	default:
		return "unknown"
	}
}

// digest stands for a key; at 128 bits of SHA-256, two keys of one window
// sharing a digest (which would answer an event as a duplicate of another)
// is as likely as guessing a random UUID twice.
type digest [16]byte

func digestOf(key string) digest {
	sum := sha256.Sum256([]byte(key))
	return digest(sum[:16])
}

type entry struct {
	key  digest
	done bool
	seen time.Time
	elem *list.Element // in lru when done
}

// Store is safe for concurrent use.
type Store struct {
	maxEntries int
	ttl        time.Duration
	now        func() time.Time

	mu      sync.Mutex
	entries map[digest]*entry
	// lru holds completed entries, most recently seen at the front. Since
	// every touch moves an entry to the front with the current time, the
	// back is also the oldest, so TTL expiry only ever looks at the back.
	lru *list.List
}

// New returns an empty store. now is the clock (time.Now outside tests).
func New(maxEntries int, ttl time.Duration, now func() time.Time) *Store {
	if maxEntries < 1 {
		maxEntries = 1
	}
	return &Store{
		maxEntries: maxEntries,
		ttl:        ttl,
		now:        now,
		entries:    make(map[digest]*entry),
		lru:        list.New(),
	}
}

// TryClaim claims key unless it is done or claimed by someone else.
func (s *Store) TryClaim(k string) Result {
	key := digestOf(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.expire(now)
	if e, ok := s.entries[key]; ok {
		if !e.done {
			return InFlight
		}
		e.seen = now
		s.lru.MoveToFront(e.elem)
		return Done
	}
	s.entries[key] = &entry{key: key, seen: now}
	return Claimed
}

// Complete records key as handled.
func (s *Store) Complete(k string) {
	key := digestOf(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	e, ok := s.entries[key]
	if !ok {
		e = &entry{key: key}
		s.entries[key] = e
	}
	e.seen = now
	if e.done {
		s.lru.MoveToFront(e.elem)
		return
	}
	e.done = true
	e.elem = s.lru.PushFront(e)
	for s.lru.Len() > s.maxEntries {
		s.remove(s.lru.Back())
	}
}

// Release gives up a claim, so a redelivery of the event is handled again.
// It does nothing if key is already done.
func (s *Store) Release(k string) {
	key := digestOf(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.entries[key]; ok && !e.done {
		delete(s.entries, key)
	}
}

// Len is the number of keys held, completed and in flight.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

func (s *Store) expire(now time.Time) {
	for back := s.lru.Back(); back != nil; back = s.lru.Back() {
		if now.Sub(back.Value.(*entry).seen) < s.ttl {
			return
		}
		s.remove(back)
	}
}

func (s *Store) remove(elem *list.Element) {
	e := s.lru.Remove(elem).(*entry)
	delete(s.entries, e.key)
}
