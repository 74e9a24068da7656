// Package deadletter keeps what reaches the dead-letter topic in the Dapr
// state store, so an operator who fixed the cause can list, inspect and
// replay it (republish it to its topic with its original CloudEvent id).
//
// Each dead letter is saved under deadletter-<id>; an index document
// (deadletters) lists the ids, because most state stores cannot list keys.
// The index is updated with optimistic concurrency (ETag), so replicas that
// receive dead letters at the same time do not lose each other's entries.
package deadletter

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/taskevents/taskevents/kit/sidecar"
	"github.com/taskevents/taskevents/worker/internal/statestore"
)

// Entry is one kept dead letter.
type Entry struct {
	ID          string    `json:"id"`
	EventID     string    `json:"event_id,omitempty"`
	Topic       string    `json:"topic,omitempty"` // the topic it was first published to
	PubsubName  string    `json:"pubsubname,omitempty"`
	Type        string    `json:"type,omitempty"`
	TaskID      string    `json:"task_id,omitempty"`
	ContentType string    `json:"content_type,omitempty"`
	ReceivedAt  time.Time `json:"received_at"`
	// Envelope is the CloudEvent exactly as the dead-letter topic delivered
	// it, when it was JSON; Raw holds anything else (base64 in JSON).
	Envelope json.RawMessage `json:"envelope,omitempty"`
	Raw      []byte          `json:"raw,omitempty"`
}

// ErrNotFound means no dead letter has that id.
var ErrNotFound = errors.New("no such dead letter")

// ErrNotReplayable means the dead letter is not a CloudEvent that can be
// republished as it is.
var ErrNotReplayable = errors.New("dead letter is not a JSON CloudEvent")

const indexKey = "deadletters"

// maxIndexRetries bounds the ETag retry loop on the index; losing it more
// often than this means something is very wrong with the store.
const maxIndexRetries = 20

// Store is safe for concurrent use.
type Store struct {
	state *sidecar.Client
	store string
	now   func() time.Time
}

// New returns a store in the state store named store.
func New(state *sidecar.Client, store string, now func() time.Time) *Store {
	return &Store{state: state, store: store, now: now}
}

type index struct {
	IDs []string `json:"ids"`
}

var safeID = regexp.MustCompile(`^[A-Za-z0-9._~:-]{1,128}$`)

// IDFor is the id a dead letter is kept under: its CloudEvent id when that is
// short and URL-safe, otherwise a hash of it (or of the body, when the event
// had no id at all).
func IDFor(eventID string, body []byte) string {
	if safeID.MatchString(eventID) {
		return eventID
	}
	src := []byte(eventID)
	if eventID == "" {
		src = body
	}
	sum := sha256.Sum256(src)
	return "h-" + hex.EncodeToString(sum[:16])
}

// Keep saves e (overwriting a redelivered copy of the same dead letter) and
// adds it to the index.
func (s *Store) Keep(ctx context.Context, e Entry) error {
	if e.ReceivedAt.IsZero() {
		e.ReceivedAt = s.now()
	}
	if err := s.state.SaveState(ctx, s.store, sidecar.StateItem{Key: key(e.ID), Value: e}); err != nil {
		return err
	}
	return s.updateIndex(ctx, func(ids []string) []string {
		if slices.Contains(ids, e.ID) {
			return nil
		}
		return append(ids, e.ID)
	})
}

// List returns every kept dead letter, oldest first.
func (s *Store) List(ctx context.Context) ([]Entry, error) {
	var idx index
	if _, _, err := statestore.Get(ctx, s.state, s.store, indexKey, &idx); err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(idx.IDs))
	for _, id := range idx.IDs {
		switch e, err := s.Get(ctx, id); {
		case err == nil:
			out = append(out, e)
		case !errors.Is(err, ErrNotFound): // not found: removed since the index was read
			return nil, err
		}
	}
	return out, nil
}

// Get returns one dead letter.
func (s *Store) Get(ctx context.Context, id string) (e Entry, err error) {
	_, found, err := statestore.Get(ctx, s.state, s.store, key(id), &e)
	if err == nil && !found {
		err = ErrNotFound
	}
	return e, err
}

// Replay republishes the dead letter to pubsub/topic as the same CloudEvent
// (same id, so the worker's dedupe still applies) and then removes it. If
// the removal fails after a successful publish, the entry stays listed and a
// second replay publishes the same id again, which the worker dedupes.
func (s *Store) Replay(ctx context.Context, id, pubsub, topic string) (Entry, error) {
	e, err := s.Get(ctx, id)
	if err != nil {
		return Entry{}, err
	}
	if len(e.Envelope) == 0 {
		return e, ErrNotReplayable
	}
	if err := s.state.Topic(pubsub, topic).Publish(ctx, sidecar.Message{Data: e.Envelope, ContentType: "application/cloudevents+json"}); err != nil {
		return e, fmt.Errorf("republishing dead letter %s: %w", id, err)
	}
	return e, s.Delete(ctx, id)
}

// Delete removes a dead letter and its index entry.
func (s *Store) Delete(ctx context.Context, id string) error {
	if err := s.updateIndex(ctx, func(ids []string) []string {
		i := slices.Index(ids, id)
		if i < 0 {
			return nil
		}
		return slices.Delete(ids, i, i+1)
	}); err != nil {
		return err
	}
	return s.state.DeleteState(ctx, s.store, key(id), "")
}

// updateIndex applies change to the index with ETag retries; change returns
// nil when there is nothing to write.
func (s *Store) updateIndex(ctx context.Context, change func([]string) []string) error {
	for range maxIndexRetries {
		var idx index
		etag, found, err := statestore.Get(ctx, s.state, s.store, indexKey, &idx)
		if err != nil {
			return err
		}
		ids := change(slices.Clone(idx.IDs))
		if ids == nil {
			return nil
		}
		if !found {
			etag = sidecar.CreateOnly
		}
		err = s.state.SaveState(ctx, s.store, sidecar.StateItem{Key: indexKey, Value: index{IDs: ids}, ETag: etag})
		if !errors.Is(err, sidecar.ErrETagMismatch) {
			return err
		}
	}
	return fmt.Errorf("dead-letter index: still conflicting after %d attempts", maxIndexRetries)
}

func key(id string) string { return "deadletter-" + id }
