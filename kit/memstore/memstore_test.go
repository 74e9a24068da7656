package memstore_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/taskevents/taskevents/kit/memstore"
)

type clock struct{ now time.Time }

func (c *clock) Now() time.Time          { return c.now }
func (c *clock) Advance(d time.Duration) { c.now = c.now.Add(d) }

// TestStore replays steps against a store of at most 3 keys that live an
// hour, with and without Refresh.
func TestStore(t *testing.T) {
	type step struct {
		op      string // put, get, advance, len
		key     string
		val     int
		d       time.Duration
		want    int // get: the value, 0 for none; len: the length
		comment string
	}
	tests := []struct {
		name    string
		refresh bool
		steps   []step
	}{
		{"least recently used go first", true, []step{
			{op: "put", key: "a", val: 1}, {op: "put", key: "b", val: 2}, {op: "put", key: "c", val: 3},
			{op: "get", key: "a", want: 1, comment: "a is now the most recently used"},
			{op: "put", key: "d", val: 4},
			{op: "get", key: "b", want: 0, comment: "b was the least recently used"},
			{op: "get", key: "a", want: 1}, {op: "get", key: "c", want: 3}, {op: "get", key: "d", want: 4},
			{op: "len", want: 3},
		}},
		{"without refresh the oldest go first", false, []step{
			{op: "put", key: "a", val: 1}, {op: "put", key: "b", val: 2}, {op: "put", key: "c", val: 3},
			{op: "get", key: "a", want: 1, comment: "a read, but still the oldest"},
			{op: "put", key: "d", val: 4},
			{op: "get", key: "a", want: 0}, {op: "get", key: "b", want: 2}, {op: "len", want: 3},
		}},
		{"a lookup renews the TTL", true, []step{
			{op: "put", key: "a", val: 1}, {op: "advance", d: 40 * time.Minute},
			{op: "put", key: "b", val: 2}, {op: "advance", d: 30 * time.Minute},
			{op: "get", key: "b", want: 2}, {op: "get", key: "a", want: 0, comment: "a expired at 60m"},
			{op: "advance", d: 45 * time.Minute}, {op: "get", key: "b", want: 2, comment: "renewed at 70m"},
			{op: "advance", d: time.Hour}, {op: "get", key: "b", want: 0}, {op: "len", want: 0},
		}},
		{"without refresh a key lives TTL from its put", false, []step{
			{op: "put", key: "a", val: 1}, {op: "advance", d: 59 * time.Minute},
			{op: "get", key: "a", want: 1}, {op: "advance", d: time.Minute}, {op: "get", key: "a", want: 0},
		}},
		{"put replaces and renews", false, []step{
			{op: "put", key: "a", val: 1}, {op: "advance", d: 59 * time.Minute}, {op: "put", key: "a", val: 2},
			{op: "advance", d: 59 * time.Minute}, {op: "get", key: "a", want: 2}, {op: "len", want: 1},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			s := memstore.New[string, int](memstore.Options{MaxEntries: 3, TTL: time.Hour, Now: c.Now, Refresh: tt.refresh})
			for i, st := range tt.steps {
				switch st.op {
				case "put":
					s.Put(st.key, st.val)
				case "advance":
					c.Advance(st.d)
				case "get":
					if v, ok := s.Get(st.key); v != st.want || ok != (st.want != 0) {
						t.Fatalf("step %d: Get(%s) = %d, %v; want %d (%s)", i, st.key, v, ok, st.want, st.comment)
					}
				case "len":
					if s.Len() != st.want {
						t.Fatalf("step %d: Len = %d, want %d", i, s.Len(), st.want)
					}
				}
			}
		})
	}
}

// Expired keys are dropped at the next call, not only when looked up.
func TestExpiredKeysFreedWithoutLookup(t *testing.T) {
	c := &clock{now: time.Now()}
	s := memstore.New[string, struct{}](memstore.Options{MaxEntries: 1000, TTL: time.Minute, Now: c.Now})
	for i := range 500 {
		s.Put(fmt.Sprint(i), struct{}{})
	}
	c.Advance(time.Minute)
	s.Get("new")
	if s.Len() != 0 {
		t.Errorf("Len = %d, want 0", s.Len())
	}
}

func BenchmarkPutGet(b *testing.B) {
	s := memstore.New[int, struct{}](memstore.Options{MaxEntries: 100_000, TTL: time.Hour, Now: time.Now, Refresh: true})
	var i int
	for b.Loop() {
		s.Put(i, struct{}{})
		s.Get(i / 2)
		i++
	}
}
