package bulk

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// A batch as daprd 1.18 sends it (pkg/runtime/pubsub/bulksubscribe_events.go): the
// envelope's fields, then entries whose event is the CloudEvent as a JSON object.
const daprdBatch = `{"entries":[` +
	`{"contentType":"application/cloudevents+json","entryId":"e-1","event":{"id":"a","specversion":"1.0"},"metadata":null},` +
	`{"contentType":"application/cloudevents+json","entryId":"e-2","event":{"id":"b","specversion":"1.0"},"metadata":{"k":"v"}}],` +
	`"id":"batch-1","metadata":{"pubsubName":"pubsub"},"pubsubname":"pubsub","topic":"task-events","type":"com.dapr.event.sent.bulk"}`

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		wantErr error // ErrNotBatch, errAny, or nil
		want    []Entry
	}{
		{name: "daprd's batch", body: daprdBatch, want: []Entry{
			{EntryID: "e-1", Event: json.RawMessage(`{"id":"a","specversion":"1.0"}`), ContentType: "application/cloudevents+json"},
			{EntryID: "e-2", Event: json.RawMessage(`{"id":"b","specversion":"1.0"}`), ContentType: "application/cloudevents+json"},
		}},
		{name: "empty batch", body: `{"entries":[],"topic":"t"}`, want: []Entry{}},
		{name: "raw payload entry: the event is a base64 string", body: `{"entries":[{"entryId":"r","event":"eyJhIjoxfQ==","contentType":"application/octet-stream"}]}`,
			want: []Entry{{EntryID: "r", Event: json.RawMessage(`"eyJhIjoxfQ=="`), ContentType: "application/octet-stream"}}},
		{name: "entry without entryId", body: `{"entries":[{"event":{}}]}`, want: []Entry{{Event: json.RawMessage(`{}`), Err: errAny}}},
		{name: "entry without event", body: `{"entries":[{"entryId":"x"}]}`, want: []Entry{{EntryID: "x", Err: errAny}}},
		{name: "entry with a null event", body: `{"entries":[{"entryId":"x","event":null}]}`, want: []Entry{{EntryID: "x", Event: json.RawMessage(`null`), Err: errAny}}},
		{name: "entry that is not an object costs only itself", body: `{"entries":[7,{"entryId":"ok","event":{}}]}`,
			want: []Entry{{Err: errAny}, {EntryID: "ok", Event: json.RawMessage(`{}`)}}},
		{name: "entryId of the wrong type", body: `{"entries":[{"entryId":5,"event":{}}]}`, want: []Entry{{Err: errAny}}},
		{name: "a CloudEvent is not a batch", body: `{"specversion":"1.0","id":"a","data":{"entries":[]}}`, wantErr: ErrNotBatch},
		{name: "no entries", body: `{"id":"a"}`, wantErr: ErrNotBatch},
		{name: "not JSON", body: `{"entries":`, wantErr: ErrNotBatch},
		{name: "entries is not a list", body: `{"entries":{"a":1}}`, wantErr: errAny},
		{name: "topic of the wrong type", body: `{"entries":[],"topic":1}`, wantErr: errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Parse([]byte(tt.body))
			switch {
			case errors.Is(tt.wantErr, ErrNotBatch):
				if !errors.Is(err, ErrNotBatch) {
					t.Fatalf("err = %v, want ErrNotBatch", err)
				}
				return
			case tt.wantErr != nil:
				if err == nil || errors.Is(err, ErrNotBatch) {
					t.Fatalf("err = %v, want a read error", err)
				}
				return
			case err != nil:
				t.Fatalf("err = %v", err)
			}
			if len(b.Entries) != len(tt.want) {
				t.Fatalf("%d entries, want %d: %+v", len(b.Entries), len(tt.want), b.Entries)
			}
			for i, w := range tt.want {
				g := b.Entries[i]
				if g.EntryID != w.EntryID || string(g.Event) != string(w.Event) || g.ContentType != w.ContentType || (g.Err != nil) != (w.Err != nil) {
					t.Errorf("entry %d = %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

func TestParseEnvelopeFields(t *testing.T) {
	b, err := Parse([]byte(daprdBatch))
	if err != nil {
		t.Fatal(err)
	}
	if b.ID != "batch-1" || b.Topic != "task-events" || b.PubsubName != "pubsub" {
		t.Errorf("batch = %+v", b)
	}
	if !IsBatch([]byte(daprdBatch)) || IsBatch([]byte(`{"id":"a","specversion":"1.0"}`)) {
		t.Error("IsBatch disagrees with the fixtures")
	}
}

// The answer's field names are daprd's (components-contrib pubsub.AppBulkResponse).
func TestAnswerShape(t *testing.T) {
	out, err := json.Marshal(Answer{Statuses: []Status{{EntryID: "e-1", Status: "SUCCESS"}, {EntryID: "e-2", Status: "DROP"}}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"statuses":[{"entryId":"e-1","status":"SUCCESS"},{"entryId":"e-2","status":"DROP"}]}`; string(out) != want {
		t.Errorf("answer = %s, want %s", out, want)
	}
}

var errAny = errors.New("any error")

// FuzzParse: whatever the body, Parse does not panic; it reads a batch or says it is not
// one; every entry either has an error or an id and an event; and no entry is lost (as
// many entries as the body's entries list holds).
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		daprdBatch,
		`{"entries":[]}`,
		`{"entries":[7,{"entryId":"ok","event":{}}]}`,
		`{"entries":[{"entryId":"x","event":null}]}`,
		`{"entries":[{"entryId":"r","event":"eyJhIjoxfQ==","contentType":"application/octet-stream"}]}`,
		`{"specversion":"1.0","entries":[]}`,
		`{"entries":{"a":1}}`,
		`{"entries":null}`,
		`[]`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := Parse(body)
		if err != nil {
			if b.Entries != nil {
				t.Fatalf("error %v with entries %+v", err, b.Entries)
			}
			return
		}
		var raw struct {
			Entries []json.RawMessage `json:"entries"`
		}
		if jerr := json.Unmarshal(body, &raw); jerr != nil {
			t.Fatalf("Parse accepted %q, which encoding/json rejects: %v", body, jerr)
		}
		if len(raw.Entries) != len(b.Entries) {
			t.Fatalf("%d entries, the body has %d", len(b.Entries), len(raw.Entries))
		}
		for i, e := range b.Entries {
			if e.Err == nil && (e.EntryID == "" || len(e.Event) == 0) {
				t.Fatalf("entry %d has no error but id %q, event %q", i, e.EntryID, e.Event)
			}
			if e.Err != nil && strings.TrimSpace(e.Err.Error()) == "" {
				t.Fatalf("entry %d: empty error", i)
			}
		}
	})
}
