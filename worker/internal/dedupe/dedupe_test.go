package dedupe

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskevents/taskevents/kit/kittest"
)

func newClock() *kittest.Clock {
	return kittest.NewClock(time.Date(2026, 11, 27, 16, 0, 0, 0, time.UTC))
}

// claim, complete and release drive the Ledger methods; the memory store
// never fails, so each also checks that it does not.
func claim(t testing.TB, s *Store, k string) Result {
	r, err := s.Claim(context.Background(), k)
	if err != nil {
		t.Errorf("Claim(%q): %v", k, err)
	}
	return r
}

func complete(t testing.TB, s *Store, k string) {
	if err := s.Complete(context.Background(), k, Handled{}); err != nil {
		t.Errorf("Complete(%q): %v", k, err)
	}
}

func release(t testing.TB, s *Store, k string) {
	if err := s.Release(context.Background(), k); err != nil {
		t.Errorf("Release(%q): %v", k, err)
	}
}

func TestLifecycle(t *testing.T) {
	s := New(10, time.Hour, newClock().Now)
	steps := []struct {
		op   string // claim, complete, release
		key  string
		want Result
	}{
		{"claim", "a", Claimed},
		{"claim", "a", InFlight},
		{"claim", "b", Claimed},
		{"release", "a", 0},
		{"claim", "a", Claimed}, // released: the redelivery handles it
		{"complete", "a", 0},
		{"claim", "a", Done},
		{"claim", "a", Done},
		{"release", "a", 0}, // releasing a done key changes nothing
		{"claim", "a", Done},
		{"claim", "b", InFlight},
		{"complete", "b", 0},
		{"claim", "b", Done},
	}
	for i, st := range steps {
		switch st.op {
		case "claim":
			if got := claim(t, s, st.key); got != st.want {
				t.Fatalf("step %d: Claim(%q) = %v, want %v", i, st.key, got, st.want)
			}
		case "complete":
			complete(t, s, st.key)
		case "release":
			release(t, s, st.key)
		}
	}
	if s.Len() != 2 {
		t.Errorf("Len() = %d, want 2", s.Len())
	}
}

func TestLRUEviction(t *testing.T) {
	s := New(3, time.Hour, newClock().Now)
	for _, k := range []string{"a", "b", "c"} {
		claim(t, s, k)
		complete(t, s, k)
	}
	// Touch "a" so that "b" is the least recently seen.
	if got := claim(t, s, "a"); got != Done {
		t.Fatalf("Claim(a) = %v", got)
	}
	// An in-flight claim is not counted against the limit and not evicted.
	if got := claim(t, s, "x"); got != Claimed {
		t.Fatalf("Claim(x) = %v", got)
	}
	claim(t, s, "d")
	complete(t, s, "d") // evicts b
	if s.Len() != 4 {
		t.Errorf("Len() = %d, want 4 (3 done + 1 in flight)", s.Len())
	}
	want := map[string]Result{"a": Done, "c": Done, "d": Done, "x": InFlight, "b": Claimed}
	for k, w := range want {
		if got := claim(t, s, k); got != w {
			t.Errorf("Claim(%q) = %v, want %v", k, got, w)
		}
	}
}

func TestTTLExpiry(t *testing.T) {
	clock := newClock()
	s := New(100, time.Hour, clock.Now)
	claim(t, s, "old")
	complete(t, s, "old")
	clock.Advance(40 * time.Minute)
	claim(t, s, "young")
	complete(t, s, "young")
	claim(t, s, "inflight")

	clock.Advance(30 * time.Minute) // old: 70m, young: 30m
	if got := claim(t, s, "young"); got != Done {
		t.Fatalf("young: %v, want done", got)
	}
	if got := claim(t, s, "old"); got != Claimed {
		t.Fatalf("old after TTL: %v, want claimed", got)
	}

	// Seeing a key refreshes it: young was touched at 70m.
	clock.Advance(45 * time.Minute) // young last seen 45m ago
	if got := claim(t, s, "young"); got != Done {
		t.Fatalf("young after refresh: %v, want done", got)
	}
	clock.Advance(time.Hour)
	if got := claim(t, s, "young"); got != Claimed {
		t.Fatalf("young after TTL: %v, want claimed", got)
	}
	// In-flight claims do not expire.
	if got := claim(t, s, "inflight"); got != InFlight {
		t.Fatalf("inflight: %v, want in-flight", got)
	}
	// Expired entries are removed, not just ignored.
	if s.Len() != 3 { // old, young (claimed again), inflight
		t.Errorf("Len() = %d, want 3", s.Len())
	}
}

func TestExpiredEntriesFreedWithoutLookup(t *testing.T) {
	clock := newClock()
	s := New(1000, time.Minute, clock.Now)
	for i := range 500 {
		k := fmt.Sprint(i)
		claim(t, s, k)
		complete(t, s, k)
	}
	clock.Advance(2 * time.Minute)
	claim(t, s, "new")
	if s.Len() != 1 {
		t.Errorf("Len() = %d, want 1", s.Len())
	}
}

func TestConcurrentClaimsOneWinner(t *testing.T) {
	s := New(100, time.Hour, time.Now)
	const n = 64
	var claimed, other atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			switch claim(t, s, "k") {
			case Claimed:
				claimed.Add(1)
			default:
				other.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	if claimed.Load() != 1 || other.Load() != n-1 {
		t.Errorf("claimed %d, other %d", claimed.Load(), other.Load())
	}
}

// FuzzDedupe replays random operations against a model without bounds; with
// a limit large enough and no time passing, both must agree.
func FuzzDedupe(f *testing.F) {
	f.Add([]byte{0, 1, 0, 2, 0, 1, 1, 0})
	f.Add([]byte{0, 0, 1, 1, 2, 2, 0, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		s := New(1<<20, time.Hour, newClock().Now)
		model := map[string]Result{}
		for i := 0; i+1 < len(ops); i += 2 {
			key := fmt.Sprint(ops[i+1] % 8)
			switch ops[i] % 3 {
			case 0:
				want := Claimed
				switch model[key] {
				case Claimed:
					want = InFlight
				case Done:
					want = Done
				}
				if got := claim(t, s, key); got != want {
					t.Fatalf("op %d: Claim(%s) = %v, want %v", i/2, key, got, want)
				}
				if want == Claimed {
					model[key] = Claimed
				}
			case 1:
				complete(t, s, key)
				model[key] = Done
			case 2:
				release(t, s, key)
				if model[key] == Claimed {
					delete(model, key)
				}
			}
		}
		if s.Len() != len(model) {
			t.Fatalf("Len() = %d, model %d", s.Len(), len(model))
		}
	})
}

func BenchmarkClaimComplete(b *testing.B) {
	s := New(100_000, time.Hour, time.Now)
	var i int
	for b.Loop() {
		k := fmt.Sprint(i)
		i++
		claim(b, s, k)
		complete(b, s, k)
	}
}

// The in-memory window full (DEDUPE_MAX_ENTRIES, 100,000 by default) must fit the worker's
// memory goal: RSS at most 40 MB, the Go runtime and everything else included. The store's
// share is measured as live heap, after GC, with keys as the worker builds them.
func TestMemoryOfFullWindow(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 100,000 entries")
	}
	const n = 100_000
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	s := New(n, time.Hour, time.Now)
	for i := range n {
		k := fmt.Sprintf("pubsub/task-events/%08x-6b7e-4d2a-9c1e-2b5d7f9a0c11", i)
		claim(t, s, k)
		complete(t, s, k)
	}
	used := heap() - before
	runtime.KeepAlive(s)
	t.Logf("dedupe store with %d entries: %.1f MB live heap (%d bytes per entry)", s.Len(), float64(used)/(1<<20), used/n)
	if s.Len() != n {
		t.Fatalf("Len() = %d", s.Len())
	}
	if used > 10<<20 {
		t.Errorf("a full window holds %.1f MB of heap: with the runtime's own and GC headroom that is past a 40 MB RSS", float64(used)/(1<<20))
	}
}
