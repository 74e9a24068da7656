package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
)

// A bulk delivery as daprd v1.18 builds it (pubsub.NewBulkSubscribeEnvelope), trimmed.
const bulkBody = `{"entries":[` +
	`{"entryId":"a1","event":{"id":"t1","data":{"task_id":"t1"}},"metadata":{},"contentType":"application/cloudevents+json"},` +
	`{"entryId":"b2","event":{"id":"t2","data":{"task_id":"t2"}},"metadata":{},"contentType":"application/cloudevents+json"}],` +
	`"id":"x","metadata":{},"pubsubname":"pubsub","topic":"task-events","type":"com.dapr.event.sent.bulk"}`

const singleBody = `{"specversion":"1.0","id":"t1","type":"task.created","datacontenttype":"application/json",` +
	`"data":{"event_type":"task.created","task_id":"t1","title":"a"}}`

func TestDeliveries(t *testing.T) {
	tests := []struct {
		name        string
		path        string
		contentType string
		body        string
		wantStatus  int
		wantBody    string
		wantCount   string
	}{
		{"single", "/events/todo", cloudEventType, singleBody, 200, `{"status":"SUCCESS"}`, "1"},
		{"single with charset", "/events/todo", cloudEventType + "; charset=utf-8", singleBody, 200, `{"status":"SUCCESS"}`, "1"},
		// A single delivery that is not a CloudEvent content type is still one event.
		{"single as json", "/events/todo", "application/json", singleBody, 200, `{"status":"SUCCESS"}`, "1"},
		{"dead letter", "/events/deadletter", cloudEventType, singleBody, 200, `{"status":"SUCCESS"}`, "1"},
		{"bulk", "/events/todo", "application/json", bulkBody, 200,
			`{"statuses":[{"entryId":"a1","status":"SUCCESS"},{"entryId":"b2","status":"SUCCESS"}]}`, "2"},
		{"empty bulk", "/events/todo", "application/json", `{"entries":[]}`, 200, `{"statuses":[]}`, "0"},
		{"not json", "/events/todo", "text/plain", "hello", 200, `{"status":"SUCCESS"}`, "1"},
		{"too large", "/events/todo", cloudEventType, strings.Repeat("x", maxBody+1), 413, "", "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(newMux(&counter{}, new(atomic.Bool)))
			defer srv.Close()
			resp, err := http.Post(srv.URL+tt.path, tt.contentType, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tt.wantStatus, got)
			}
			if tt.wantBody != "" && string(got) != tt.wantBody {
				t.Errorf("body %s, want %s", got, tt.wantBody)
			}
			if n := getCount(t, srv.URL); n != tt.wantCount {
				t.Errorf("count %s, want %s", n, tt.wantCount)
			}
		})
	}
}

func TestCountAddsUp(t *testing.T) {
	srv := httptest.NewServer(newMux(&counter{}, new(atomic.Bool)))
	defer srv.Close()
	for range 3 {
		resp, err := http.Post(srv.URL+"/events/todo", cloudEventType, strings.NewReader(singleBody))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	resp, err := http.Post(srv.URL+"/events/todo", "application/json", strings.NewReader(bulkBody))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if n := getCount(t, srv.URL); n != "5" {
		t.Fatalf("count %s after 3 single and one bulk of 2, want 5", n)
	}
}

func TestProbes(t *testing.T) {
	draining := new(atomic.Bool)
	srv := httptest.NewServer(newMux(&counter{}, draining))
	defer srv.Close()
	for _, tt := range []struct {
		path     string
		draining bool
		want     int
	}{
		{"/healthz", false, 200}, {"/readyz", false, 200}, {"/healthz", true, 200}, {"/readyz", true, 503},
	} {
		draining.Store(tt.draining)
		resp, err := http.Get(srv.URL + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("GET %s while draining=%v: %d, want %d", tt.path, tt.draining, resp.StatusCode, tt.want)
		}
	}
}

func getCount(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/count")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b))
}

// FuzzBulkEntryIDs: the decoder never panics, and whatever it reads as a bulk envelope
// holds exactly the entry ids a full decode finds.
func FuzzBulkEntryIDs(f *testing.F) {
	for _, s := range []string{bulkBody, singleBody, `{"entries":[]}`, `{"entries":null}`, `{"entries":[{}]}`,
		`{"entries":{"entryId":"a"}}`, `[]`, `null`, ``, `{"entries":[{"entryId":1}]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ids, ok := bulkEntryIDs(body)
		if !ok {
			if ids != nil {
				t.Fatalf("ids %q with ok=false", ids)
			}
			return
		}
		var full struct {
			Entries []map[string]any `json:"entries"`
		}
		if err := json.Unmarshal(body, &full); err != nil {
			t.Fatalf("bulkEntryIDs accepted what a full decode refuses: %v", err)
		}
		if len(ids) != len(full.Entries) {
			t.Fatalf("%d ids for %d entries", len(ids), len(full.Entries))
		}
		// encoding/json matches keys case-insensitively; where an entry has one key that
		// can be its id, the id must be that key's string value.
		for i, e := range full.Entries {
			var keys []string
			for k := range e {
				if strings.EqualFold(k, "entryId") {
					keys = append(keys, k)
				}
			}
			if want, isString := e["entryId"].(string); len(keys) == 1 && keys[0] == "entryId" && isString && ids[i] != want {
				t.Fatalf("entry %d: id %q, want %q", i, ids[i], want)
			}
		}
		// What we answer with must read back as the same ids.
		round := make([]map[string]string, len(ids))
		for i, id := range ids {
			round[i] = map[string]string{"entryId": id}
		}
		again, _ := json.Marshal(map[string]any{"entries": round})
		if back, ok := bulkEntryIDs(again); !ok || !slices.Equal(back, ids) {
			t.Fatalf("round trip: %q, want %q", back, ids)
		}
	})
}
