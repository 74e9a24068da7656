// Package bulk reads daprd's bulk-subscribe delivery, one request carrying
// many events, and writes its answer, one status per entry.
//
// The shapes are daprd 1.18's: the request body is
//
//	{"id":…,"type":"com.dapr.event.sent.bulk","topic":…,"pubsubname":…,"metadata":{…},
//	 "entries":[{"entryId":…,"event":<the CloudEvent>,"contentType":…,"metadata":{…}}]}
//
// with Content-Type application/json, and the answer is
//
//	{"statuses":[{"entryId":…,"status":"SUCCESS"|"RETRY"|"DROP"}]}
//
// An entry the answer leaves out, or gives an empty status, is retried.
package bulk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Entry is one event of a batch. Event is the CloudEvent as JSON (an
// object), or, for a subscription with rawPayload, the payload as a base64
// JSON string.
type Entry struct {
	EntryID     string
	Event       json.RawMessage
	ContentType string
	// Err says why this entry cannot be handled (it is not an object, or its
	// event is missing); EntryID is set when it could still be read.
	Err error
}

// Batch is a parsed bulk delivery.
type Batch struct {
	ID         string
	Topic      string
	PubsubName string
	Entries    []Entry
}

// envelope is the batch as daprd writes it. Decoding straight into it is
// the fast path; lenientEnvelope is the fallback when an entry has the wrong
// shape, so one malformed entry costs that entry, not its siblings.
type envelope struct {
	ID          string          `json:"id"`
	Topic       string          `json:"topic"`
	PubsubName  string          `json:"pubsubname"`
	Specversion json.RawMessage `json:"specversion"`
	Entries     []entry         `json:"entries"`
}

type lenientEnvelope struct {
	ID         string            `json:"id"`
	Topic      string            `json:"topic"`
	PubsubName string            `json:"pubsubname"`
	Entries    []json.RawMessage `json:"entries"`
}

type entry struct {
	EntryID     string          `json:"entryId"`
	Event       json.RawMessage `json:"event"`
	ContentType string          `json:"contentType"`
}

// entriesKey is how IsBatch tells a batch from a single CloudEvent without
// decoding the body.
var entriesKey = []byte(`"entries"`)

// IsBatch reports whether body may be a bulk delivery: a single CloudEvent
// body only looks like one if it mentions "entries", and Parse then decides.
// daprd sends single deliveries as application/cloudevents+json, so callers
// only ask for other content types.
func IsBatch(body []byte) bool {
	return bytes.Contains(body, entriesKey)
}

// ErrNotBatch is Parse's answer for a JSON object that is a CloudEvent (it
// has specversion) or has no entries member: the caller reads it as a
// single event.
var ErrNotBatch = errors.New("not a bulk delivery")

// Parse reads a bulk delivery. It fails only when the body as a whole is
// not a batch (ErrNotBatch) or cannot be read (any other error); problems of
// single entries are reported in their Err.
func Parse(body []byte) (Batch, error) {
	if !IsBatch(body) {
		// encoding/json also matches "Entries"; daprd writes it lower case.
		return Batch{}, ErrNotBatch
	}
	var env envelope
	err := json.Unmarshal(body, &env)
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &typeErr):
		return parseLeniently(body)
	case err != nil:
		return Batch{}, ErrNotBatch // not JSON: not a batch either
	case len(env.Specversion) > 0 || env.Entries == nil && !hasEntries(body):
		return Batch{}, ErrNotBatch
	}
	b := Batch{ID: env.ID, Topic: env.Topic, PubsubName: env.PubsubName, Entries: make([]Entry, len(env.Entries))}
	for i, e := range env.Entries {
		b.Entries[i] = Entry{EntryID: e.EntryID, Event: e.Event, ContentType: e.ContentType, Err: check(i, e)}
	}
	return b, nil
}

// hasEntries tells {"entries":null} (a batch, empty) from a body without
// the member at all.
func hasEntries(body []byte) bool {
	var probe struct {
		Entries json.RawMessage `json:"entries"`
	}
	return json.Unmarshal(body, &probe) == nil && len(probe.Entries) > 0
}

// parseLeniently decodes each entry on its own, for a batch in which some
// entry has the wrong shape.
func parseLeniently(body []byte) (Batch, error) {
	var probe struct {
		Specversion json.RawMessage `json:"specversion"`
		Entries     json.RawMessage `json:"entries"`
	}
	if err := json.Unmarshal(body, &probe); err != nil || len(probe.Specversion) > 0 || len(probe.Entries) == 0 {
		return Batch{}, ErrNotBatch
	}
	var env lenientEnvelope
	if err := json.Unmarshal(body, &env); err != nil {
		return Batch{}, fmt.Errorf("bulk delivery: %w", err)
	}
	b := Batch{ID: env.ID, Topic: env.Topic, PubsubName: env.PubsubName, Entries: make([]Entry, len(env.Entries))}
	for i, raw := range env.Entries {
		var e entry
		if err := json.Unmarshal(raw, &e); err != nil {
			b.Entries[i].Err = fmt.Errorf("entry %d is not an object with an entryId: %w", i, err)
			continue
		}
		b.Entries[i] = Entry{EntryID: e.EntryID, Event: e.Event, ContentType: e.ContentType, Err: check(i, e)}
	}
	return b, nil
}

func check(i int, e entry) error {
	switch {
	case e.EntryID == "":
		return fmt.Errorf("entry %d has no entryId", i)
	case len(e.Event) == 0 || bytes.Equal(e.Event, []byte("null")):
		return fmt.Errorf("entry %d has no event", i)
	}
	return nil
}

// Status is the answer for one entry.
type Status struct {
	EntryID string `json:"entryId"`
	Status  string `json:"status"`
}

// Answer is the body daprd expects back.
type Answer struct {
	Statuses []Status `json:"statuses"`
}
