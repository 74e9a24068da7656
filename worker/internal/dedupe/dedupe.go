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

// entry is one key. Completed entries are also links of the store's LRU
// list (prev, next); keeping the links in the entry, rather than in a
// container/list element beside it, saves an allocation per key.
type entry struct {
	key        digest
	done       bool
	seen       int64 // the clock's UnixNano when last seen
	prev, next *entry
}

// Store is safe for concurrent use.
type Store struct {
	maxEntries int
	ttl        time.Duration
	now        func() time.Time

	mu      sync.Mutex
	entries map[digest]*entry
	// lru links the completed entries, most recently seen first, in a ring
	// through root. Since every touch moves an entry to the front with the
	// current time, the back is also the oldest, so TTL expiry only ever
	// looks at the back.
	lru  entry
	done int // completed entries in lru
}

// New returns an empty store. now is the clock (time.Now outside tests).
func New(maxEntries int, ttl time.Duration, now func() time.Time) *Store {
	if maxEntries < 1 {
		maxEntries = 1
	}
	s := &Store{
		maxEntries: maxEntries,
		ttl:        ttl,
		now:        now,
		entries:    make(map[digest]*entry),
	}
	s.lru.prev, s.lru.next = &s.lru, &s.lru
	return s
}

// TryClaim claims key unless it is done or claimed by someone else.
func (s *Store) TryClaim(k string) Result {
	key := digestOf(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().UnixNano()
	s.expire(now)
	if e, ok := s.entries[key]; ok {
		if !e.done {
			return InFlight
		}
		e.seen = now
		s.toFront(e)
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
	e, ok := s.entries[key]
	if !ok {
		e = &entry{key: key}
		s.entries[key] = e
	}
	e.seen = s.now().UnixNano()
	if !e.done {
		e.done = true
		s.done++
	}
	s.toFront(e)
	for s.done > s.maxEntries {
		s.remove(s.lru.prev)
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

func (s *Store) expire(now int64) {
	for back := s.lru.prev; back != &s.lru; back = s.lru.prev {
		if time.Duration(now-back.seen) < s.ttl {
			return
		}
		s.remove(back)
	}
}

// toFront puts a completed entry at the front of lru, unlinking it first if
// it is already in.
func (s *Store) toFront(e *entry) {
	if e.prev != nil {
		e.prev.next, e.next.prev = e.next, e.prev
	}
	e.prev, e.next = &s.lru, s.lru.next
	s.lru.next.prev = e
	s.lru.next = e
}

// remove forgets a completed entry.
func (s *Store) remove(e *entry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
	s.done--
	delete(s.entries, e.key)
}
