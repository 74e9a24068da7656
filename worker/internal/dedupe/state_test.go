package dedupe_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/taskevents/taskevents/kit/kittest"
	"github.com/taskevents/taskevents/kit/sidecar"
	"github.com/taskevents/taskevents/kit/sidecar/sidecartest"
	"github.com/taskevents/taskevents/worker/internal/dedupe"
)

const key = "pubsub/task-events/9d1e3c0a-0000-4000-8000-000000000001"

func newLedger(t *testing.T) (*sidecartest.Fake, *kittest.Clock, func() *dedupe.StateLedger) {
	t.Helper()
	fake := sidecartest.New(t)
	c := kittest.NewClock(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	fake.SetClock(c.Now)
	client := sidecar.New(sidecar.Options{BaseURL: fake.URL})
	// Each call is a separate worker process (or replica) on the same store.
	return fake, c, func() *dedupe.StateLedger {
		return dedupe.NewStateLedger(client, "statestore", 30*time.Second, time.Hour, c.Now)
	}
}

func task(id string) dedupe.Handled {
	return dedupe.Handled{TaskID: id, Title: "t", EventID: id}
}

func mustClaim(t *testing.T, l dedupe.Ledger, want dedupe.Result) {
	t.Helper()
	got, err := l.Claim(context.Background(), key)
	if err != nil || got != want {
		t.Fatalf("Claim = %v, %v; want %v", got, err, want)
	}
}

func TestStateLedgerLifecycle(t *testing.T) {
	fake, _, ledger := newLedger(t)
	ctx := context.Background()
	a, b := ledger(), ledger()

	mustClaim(t, a, dedupe.Claimed)
	mustClaim(t, b, dedupe.InFlight) // another replica sees the claim
	mustClaim(t, a, dedupe.InFlight) // so does a second delivery to the same one
	if err := a.Complete(ctx, key, task("3f0c8a51-6b7e-4d2a-9c1e-2b5d7f9a0c11")); err != nil {
		t.Fatal(err)
	}
	mustClaim(t, b, dedupe.Done)
	mustClaim(t, ledger(), dedupe.Done) // and a restarted worker

	var got dedupe.Handled
	if err := json.Unmarshal(fake.Value("statestore", dedupe.TaskKey("3f0c8a51-6b7e-4d2a-9c1e-2b5d7f9a0c11")), &got); err != nil {
		t.Fatalf("handled task record: %v", err)
	}
	if got.Title != "t" {
		t.Errorf("task record = %+v", got)
	}
}

func TestStateLedgerRelease(t *testing.T) {
	_, _, ledger := newLedger(t)
	a, b := ledger(), ledger()
	mustClaim(t, a, dedupe.Claimed)
	if err := a.Release(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	mustClaim(t, b, dedupe.Claimed) // a DROP or RETRY leaves the event claimable
}

// A worker that dies holding a claim blocks redeliveries for one lease, then
// the event is claimable again.
func TestStateLedgerLeaseExpires(t *testing.T) {
	_, c, ledger := newLedger(t)
	mustClaim(t, ledger(), dedupe.Claimed)
	c.Advance(29 * time.Second)
	mustClaim(t, ledger(), dedupe.InFlight)
	c.Advance(2 * time.Second)
	mustClaim(t, ledger(), dedupe.Claimed)
}

// A claimant that outlived its lease and completes after the next claimant
// did learns that it lost, and the task is recorded once.
func TestStateLedgerLateCompleteLoses(t *testing.T) {
	fake, c, ledger := newLedger(t)
	ctx := context.Background()
	slow, fast := ledger(), ledger()
	mustClaim(t, slow, dedupe.Claimed)
	c.Advance(31 * time.Second)
	mustClaim(t, fast, dedupe.Claimed)
	if err := fast.Complete(ctx, key, task("3f0c8a51-6b7e-4d2a-9c1e-2b5d7f9a0c11")); err != nil {
		t.Fatal(err)
	}
	if err := slow.Complete(ctx, key, task("3f0c8a51-6b7e-4d2a-9c1e-2b5d7f9a0c11")); !errors.Is(err, dedupe.ErrAlreadyDone) {
		t.Fatalf("late Complete = %v, want ErrAlreadyDone", err)
	}
	if n := len(fake.Keys("statestore", "task-")); n != 1 {
		t.Errorf("%d task records, want 1", n)
	}
}

func TestStateLedgerStoreDown(t *testing.T) {
	fake, _, ledger := newLedger(t)
	fake.FailState(&sidecartest.StateStoreDown)
	if _, err := ledger().Claim(context.Background(), key); err == nil {
		t.Fatal("Claim with the state store down succeeded")
	}
}

func TestStateLedgerDoneMarkExpires(t *testing.T) {
	_, c, ledger := newLedger(t)
	a := ledger()
	mustClaim(t, a, dedupe.Claimed)
	if err := a.Complete(context.Background(), key, task("3f0c8a51-6b7e-4d2a-9c1e-2b5d7f9a0c11")); err != nil {
		t.Fatal(err)
	}
	c.Advance(59 * time.Minute)
	mustClaim(t, ledger(), dedupe.Done)
	c.Advance(2 * time.Minute)
	mustClaim(t, ledger(), dedupe.Claimed) // past DEDUPE_TTL the event is new again
}

// Many replicas racing for one event: exactly one claims it.
func TestStateLedgerRace(t *testing.T) {
	_, _, ledger := newLedger(t)
	var wg sync.WaitGroup
	results := make(chan dedupe.Result, 16)
	for range 16 {
		wg.Go(func() {
			r, err := ledger().Claim(context.Background(), key)
			if err != nil {
				t.Error(err)
			}
			results <- r
		})
	}
	wg.Wait()
	close(results)
	claimed := 0
	for r := range results {
		if r == dedupe.Claimed {
			claimed++
		}
	}
	if claimed != 1 {
		t.Errorf("%d replicas claimed the event, want 1", claimed)
	}
}

// A claim whose TTL was never set (the sidecar died between Redis's write and its EXPIRE)
// is taken over once the lease it records has passed, by exactly one of the racers.
func TestStateLedgerClaimWithoutTTLIsTakenOver(t *testing.T) {
	fake, c, ledger := newLedger(t)
	client := sidecar.New(sidecar.Options{BaseURL: fake.URL})
	stale := map[string]any{"state": "claimed", "owner": "dead/1/x", "event_key": key,
		"at": c.Now(), "expires_at": c.Now().Add(15 * time.Second)}
	if err := client.SaveState(context.Background(), "statestore", sidecar.StateItem{Key: dedupe.StateKey(key), Value: stale, ETag: sidecar.CreateOnly}); err != nil {
		t.Fatal(err)
	}
	mustClaim(t, ledger(), dedupe.InFlight)
	c.Advance(16 * time.Second)
	var wg sync.WaitGroup
	results := make(chan dedupe.Result, 8)
	ledgers := make([]*dedupe.StateLedger, 8)
	for i := range ledgers {
		ledgers[i] = ledger()
	}
	for _, l := range ledgers {
		wg.Go(func() {
			r, err := l.Claim(context.Background(), key)
			if err != nil {
				t.Error(err)
			}
			results <- r
		})
	}
	wg.Wait()
	close(results)
	claimed := 0
	for r := range results {
		if r == dedupe.Claimed {
			claimed++
		}
	}
	if claimed != 1 {
		t.Fatalf("%d deliveries took over the stale claim, want 1", claimed)
	}
	for _, l := range ledgers {
		if err := l.Complete(context.Background(), key, task("3f0c8a51-6b7e-4d2a-9c1e-2b5d7f9a0c11")); err == nil {
			mustClaim(t, ledger(), dedupe.Done)
			return
		}
	}
	t.Fatal("no delivery could complete after the takeover")
}
