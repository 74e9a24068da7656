package idempotency

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/taskevents/taskevents/kit/memstore"
	"github.com/taskevents/taskevents/kit/sidecar"
)

// Record is what a key is remembered with.
type Record struct {
	// TaskID is the task (and CloudEvent) id the key's first request got.
	TaskID string `json:"task_id"`
	// Fingerprint is Fingerprint(title) of that request.
	Fingerprint string `json:"fingerprint"`
}

// Store remembers keys for a fixed TTL, after which a key is new again.
//
// There is no "in progress" state: a record is written before the task is
// published, and every request that finds it publishes again under the same
// task id. The event's id makes the repeats recognisable to subscribers, so
// a retry after a failed, timed-out or concurrent first attempt is answered
// like the first one instead of with 409.
type Store interface {
	// Claim records rec under key unless key already holds an unexpired
	// record, and returns the record key holds: rec with claimed true, or the
	// earlier one with claimed false.
	Claim(ctx context.Context, key Key, rec Record) (held Record, claimed bool, err error)
}

// Memory is a Store in this process: for a single replica or a run without a
// state store. A restart forgets every key, and replicas do not share keys.
// It holds at most maxKeys; beyond that the oldest key is forgotten early.
type Memory struct {
	mu sync.Mutex
	// keys are never renewed: every key lives exactly the TTL.
	keys *memstore.Store[string, Record]
}

// MemoryKeys is the bound of a Memory store outside tests: some 200 bytes a
// key, so at most about 20 MiB.
const MemoryKeys = 100_000

// NewMemory returns an empty memory store. now is the clock (time.Now
// outside tests).
func NewMemory(ttl time.Duration, maxKeys int, now func() time.Time) *Memory {
	return &Memory{keys: memstore.New[string, Record](memstore.Options{MaxEntries: maxKeys, TTL: ttl, Now: now})}
}

// Claim implements Store; it never fails.
func (m *Memory) Claim(_ context.Context, key Key, rec Record) (Record, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if held, ok := m.keys.Get(key.ID()); ok {
		return held, false, nil
	}
	m.keys.Put(key.ID(), rec)
	return rec, true, nil
}

// StateAPI is the part of the sidecar's state API that Dapr needs;
// *sidecar.Client implements it.
type StateAPI interface {
	SaveState(ctx context.Context, store string, it sidecar.StateItem) error
	GetState(ctx context.Context, store, key string) (sidecar.State, bool, error)
}

// claimRounds bounds how often Claim saves again when the record that beat it
// expired before it could be read.
const claimRounds = 3

// Dapr is a Store in a Dapr state store, through the sidecar: shared by every
// replica and kept across restarts. The store expires records itself
// (ttlInSeconds), so nothing here ever deletes one.
type Dapr struct {
	api     StateAPI
	store   string
	ttl     time.Duration
	timeout time.Duration
}

// NewDapr returns a store in the Dapr state store component named store.
// timeout bounds one Claim (every sidecar call it makes).
func NewDapr(api StateAPI, store string, ttl, timeout time.Duration) *Dapr {
	return &Dapr{api: api, store: store, ttl: ttl, timeout: timeout}
}

// Claim implements Store with a first-write save: the sidecar creates the
// record or answers 409, and the loser of a race reads the winner's record.
// Errors wrap the sidecar's (*sidecar.UnavailableError, *sidecar.ConfigError).
func (d *Dapr) Claim(ctx context.Context, key Key, rec Record) (Record, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	for range claimRounds {
		err := d.api.SaveState(ctx, d.store, sidecar.StateItem{Key: key.ID(), Value: rec, ETag: sidecar.CreateOnly, TTL: d.ttl})
		if err == nil {
			return rec, true, nil
		}
		if !errors.Is(err, sidecar.ErrETagMismatch) {
			return Record{}, false, d.wrap("save", err)
		}
		s, found, err := d.api.GetState(ctx, d.store, key.ID())
		if err != nil {
			return Record{}, false, d.wrap("read", err)
		}
		if !found {
			continue // the record expired between our save and our read: the key is new again
		}
		var held Record
		if err := json.Unmarshal(s.Value, &held); err != nil || held.TaskID == "" {
			return Record{}, false, fmt.Errorf("state store %q holds %s that is not an idempotency record: %.100q",
				d.store, key.ID(), s.Value)
		}
		return held, false, nil
	}
	return Record{}, false, &sidecar.UnavailableError{Attempts: claimRounds,
		Err: fmt.Errorf("state store %q: %s kept expiring between save and read", d.store, key.ID())}
}

func (d *Dapr) wrap(op string, err error) error {
	return fmt.Errorf("%s idempotency record in state store %q: %w", op, d.store, err)
}
