// Package memstore is a bounded map for what an app remembers in memory for a
// while: keys expire a fixed time after they were stored (or, with Refresh,
// last looked up), and beyond a maximum the least recently used go first.
//
// The recency list is threaded through the entries themselves rather than kept
// in a container/list beside them: one allocation a key instead of two, which
// is what keeps the worker's full dedupe window (100,000 keys) near 5 MB.
package memstore

import "time"

// Options size a Store.
type Options struct {
	// MaxEntries bounds the keys held (at least 1).
	MaxEntries int
	// TTL is how long a key lives; it must be positive.
	TTL time.Duration
	// Now is the clock; time.Now outside tests.
	Now func() time.Time
	// Refresh makes a lookup renew the key: it becomes the most recently used
	// and its TTL starts again. Without it a key lives TTL from when it was
	// stored, however often it is read.
	Refresh bool
}

// Store is not safe for concurrent use: callers hold their own lock, usually
// because a lookup and the store that depends on it must be one step.
type Store[K comparable, V any] struct {
	o       Options
	entries map[K]*entry[K, V]
	// root links the entries in a ring, most recently used first. Every use
	// moves an entry to the front with the current time, so the back is also
	// the oldest, and expiry only ever looks at the back.
	root entry[K, V]
}

// entry keeps val before seen so that a zero-size V adds no padding.
type entry[K comparable, V any] struct {
	key        K
	val        V
	seen       int64 // the clock's UnixNano when stored or last renewed
	prev, next *entry[K, V]
}

// New returns an empty store.
func New[K comparable, V any](o Options) *Store[K, V] {
	o.MaxEntries = max(o.MaxEntries, 1)
	s := &Store[K, V]{o: o, entries: make(map[K]*entry[K, V])}
	s.root.prev, s.root.next = &s.root, &s.root
	return s
}

// Get returns the value held under key, unless it has expired.
func (s *Store[K, V]) Get(key K) (V, bool) {
	now := s.expire()
	e, ok := s.entries[key]
	if !ok {
		var zero V
		return zero, false
	}
	if s.o.Refresh {
		e.seen = now
		s.toFront(e)
	}
	return e.val, true
}

// Put stores v under key, replacing what was there, as the most recently
// used key; beyond MaxEntries the least recently used are dropped.
func (s *Store[K, V]) Put(key K, v V) {
	now := s.expire()
	e, ok := s.entries[key]
	if !ok {
		e = &entry[K, V]{key: key}
		s.entries[key] = e
	}
	e.val, e.seen = v, now
	s.toFront(e)
	for len(s.entries) > s.o.MaxEntries {
		s.remove(s.root.prev)
	}
}

// Len is the number of keys held, expired ones not yet dropped included.
func (s *Store[K, V]) Len() int { return len(s.entries) }

// expire drops the keys whose TTL has run out and returns the time.
func (s *Store[K, V]) expire() int64 {
	now := s.o.Now().UnixNano()
	for back := s.root.prev; back != &s.root && time.Duration(now-back.seen) >= s.o.TTL; back = s.root.prev {
		s.remove(back)
	}
	return now
}

// toFront puts e at the front of the ring, unlinking it first if it is in.
func (s *Store[K, V]) toFront(e *entry[K, V]) {
	if e.prev != nil {
		e.prev.next, e.next.prev = e.next, e.prev
	}
	e.prev, e.next = &s.root, s.root.next
	s.root.next.prev = e
	s.root.next = e
}

func (s *Store[K, V]) remove(e *entry[K, V]) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
	delete(s.entries, e.key)
}
