package dedupe

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/taskevents/taskevents/kit/sidecar"
	"github.com/taskevents/taskevents/worker/internal/statestore"
)

// StateLedger keeps claims and completions in a Dapr state store, so a
// restarted worker or another replica sees what this one handled.
//
// A claim is a first-write of dedupe-<hash of the event key> with a TTL of
// one lease: if the claimant dies, the claim expires and a redelivery can
// claim again; until then redeliveries are answered RETRY. The claim also
// records when its lease ends, so a claim whose TTL was never set is taken
// over once that time has passed. Completing replaces the claim by a done
// mark (kept for the retention) and saves the handled task as task-<task
// id>, in one state transaction conditioned on the claim's ETag, so the mark
// and the effect are written together or not at all.
type StateLedger struct {
	state            *sidecar.Client
	store            string
	lease, retention time.Duration
	owner            string
	now              func() time.Time

	// etags holds the ETag of each claim this process holds, for Complete
	// and Release; it is bounded by the deliveries in flight.
	etags sync.Map
}

// NewStateLedger returns a ledger in the state store named store. lease must
// outlast a delivery (the handler timeout plus the round trips), or a live
// handler's claim could expire under it.
func NewStateLedger(state *sidecar.Client, store string, lease, retention time.Duration, now func() time.Time) *StateLedger {
	return &StateLedger{state: state, store: store, lease: lease, retention: retention, owner: ownerID(), now: now}
}

// mark is the value of a dedupe key.
type mark struct {
	State     string    `json:"state"` // "claimed" or "done"
	Owner     string    `json:"owner,omitempty"`
	EventKey  string    `json:"event_key"`
	TaskID    string    `json:"task_id,omitempty"`
	At        time.Time `json:"at"`
	ExpiresAt time.Time `json:"expires_at"`
}

const (
	stateClaimed = "claimed"
	stateDone    = "done"
)

// Claim first-writes the claim; if the key exists it reads what is there,
// and takes over a claim that outlived its lease.
func (l *StateLedger) Claim(ctx context.Context, key string) (Result, error) {
	k := StateKey(key)
	etag := sidecar.CreateOnly
	// A claim can expire, or be taken over, between a write and the read
	// after it; a few rounds settle it.
	for range 6 {
		now := l.now()
		err := l.state.SaveState(ctx, l.store, sidecar.StateItem{Key: k, ETag: etag, TTL: l.lease,
			Value: mark{State: stateClaimed, Owner: l.owner, EventKey: key, At: now, ExpiresAt: now.Add(l.lease)}})
		if err != nil && !errors.Is(err, sidecar.ErrETagMismatch) {
			return 0, err
		}
		var m mark
		got, found, gerr := statestore.Get(ctx, l.state, l.store, k, &m)
		switch {
		case gerr != nil:
			return 0, gerr
		case err == nil && found && m.Owner == l.owner:
			l.etags.Store(key, got)
			return Claimed, nil
		case err == nil || !found:
			etag = sidecar.CreateOnly // expired at once, replaced, or gone: create again
			continue
		case m.State == stateDone:
			return Done, nil
		case now.Before(m.ExpiresAt):
			return InFlight, nil
		}
		// The claim outlived its lease but is still there: Redis sets the TTL
		// with a second command after the write, and a sidecar killed (or a
		// request canceled) between the two leaves a claim that never
		// expires. Take it over, conditioned on its ETag, so that of several
		// deliveries doing this at once exactly one wins.
		etag = got
	}
	return InFlight, nil
}

// Complete writes the done mark and the handled task in one transaction.
func (l *StateLedger) Complete(ctx context.Context, key string, task Handled) error {
	v, ok := l.etags.LoadAndDelete(key)
	if !ok {
		return fmt.Errorf("complete %q: this worker holds no claim on it", key)
	}
	now, k := l.now(), StateKey(key)
	err := l.state.TransactState(ctx, l.store,
		sidecar.StateItem{Key: k, ETag: v.(string), TTL: l.retention,
			Value: mark{State: stateDone, EventKey: key, TaskID: task.TaskID, At: now, ExpiresAt: now.Add(l.retention)}},
		sidecar.StateItem{Key: TaskKey(task.TaskID), Value: task},
	)
	if err == nil {
		return nil
	}
	// The transaction failed. If the mark says done, a delivery whose claim
	// took over after ours expired got there first.
	var m mark
	if _, found, gerr := statestore.Get(ctx, l.state, l.store, k, &m); gerr == nil && found && m.State == stateDone {
		return ErrAlreadyDone
	}
	return err
}

// Release deletes this process's claim. A failure only delays the next
// attempt until the lease expires, so it is reported, not retried.
func (l *StateLedger) Release(ctx context.Context, key string) error {
	if v, ok := l.etags.LoadAndDelete(key); ok {
		return l.state.DeleteState(ctx, l.store, StateKey(key), v.(string))
	}
	return nil
}

// StateKey is the state key of an event's claim or done mark. Event keys
// hold the component, topic and CloudEvent id, which may contain anything;
// a hash keeps the state key valid in every store and URL.
func StateKey(eventKey string) string {
	sum := sha256.Sum256([]byte(eventKey))
	return "dedupe-" + hex.EncodeToString(sum[:16])
}

// TaskKey is the state key of a handled task. Task ids are UUIDs (the
// parser rejects anything else), so they are safe as they are.
func TaskKey(taskID string) string { return "task-" + taskID }

func ownerID() string {
	host, _ := os.Hostname()
	var b [6]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}
