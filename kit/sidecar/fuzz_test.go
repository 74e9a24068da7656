package sidecar

import (
	"encoding/json"
	"maps"
	"strconv"
	"testing"
	"unicode/utf8"
)

// FuzzParseBulkError feeds parseBulkError whatever a sidecar (or something
// else listening on its port) might answer to a bulk publish. It must not
// panic, must report exactly the entry ids the body lists, and must read daprd's own
// shape exactly.
func FuzzParseBulkError(f *testing.F) {
	for _, seed := range []string{
		`{"failedEntries":[{"entryId":"0","error":"redis streams: error from publish: connection refused"}],"errorCode":"ERR_PUBSUB_PUBLISH_MESSAGE"}`,
		`{"failedEntries":[],"errorCode":"ERR_PUBSUB_PUBLISH_MESSAGE"}`,
		`{"errorCode":"ERR_PUBSUB_FORBIDDEN","message":"topic task-events is not allowed for app id task-api"}`,
		`{"failedEntries":null}`, `{"failedEntries":[{"entryId":1}]}`, `[]`, `null`, `"x"`,
		"invalid api token", "", "\xff\xfe", `{"failedEntries":[{"entryId":"0"},{"entryId":"0","error":"dup"}]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		failed, code, msg := parseBulkError(raw)
		if !utf8.ValidString(msg) || !utf8.ValidString(code) {
			t.Errorf("invalid UTF-8 in code %q or message %q", code, msg)
		}
		if failed != nil && len(failed) == 0 {
			t.Error("an empty failed map must be nil (nil means: every entry failed)")
		}
		// daprd's shape round-trips.
		var body struct {
			FailedEntries []struct {
				EntryID string `json:"entryId"`
				Error   string `json:"error"`
			} `json:"failedEntries"`
			ErrorCode string `json:"errorCode"`
		}
		if json.Unmarshal(raw, &body) != nil {
			if failed != nil {
				t.Errorf("entries %v reported from a body that is not a JSON object", failed)
			}
			return
		}
		listed := map[string]bool{}
		for _, e := range body.FailedEntries {
			listed[e.EntryID] = true
			if _, ok := failed[e.EntryID]; !ok {
				t.Errorf("entry %q listed in the body but not reported", e.EntryID)
			}
		}
		if len(listed) != len(failed) {
			t.Errorf("reported %d entries, the body lists %d", len(failed), len(listed))
		}
		if len(body.FailedEntries) > 0 {
			if code != body.ErrorCode {
				t.Errorf("code %q, want %q", code, body.ErrorCode)
			}
		}
	})
}

// FuzzEncodeBulk checks the hand-built bulk body by what daprd decodes from
// it: every entry with its index as id, its event as it is, and exactly the
// metadata it set, strings escaped as encoding/json does.
func FuzzEncodeBulk(f *testing.F) {
	f.Add("3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b", "task.created", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "congo=t61rcWkgMzE", "")
	f.Add("a\"b\\c", "tab\tnew\nline\u2028\u2029\x00\x1f\x7f", "", "st", "application/cloudevents+json")
	f.Add("\xff\xfe", "é 日本 \xed\xa0\x80 \U0001F600", "tp", "", "")
	f.Fuzz(func(t *testing.T, id, typ, traceparent, tracestate, contentType string) {
		data, _ := json.Marshal(map[string]string{"id": id})
		ms := []Message{
			{Data: data, ContentType: contentType, ID: id, Type: typ, PartitionKey: id, TraceParent: traceparent, TraceState: tracestate},
			{Data: []byte(`{}`)},
		}
		var got []struct {
			EntryID     string            `json:"entryId"`
			Event       json.RawMessage   `json:"event"`
			ContentType string            `json:"contentType"`
			Metadata    map[string]string `json:"metadata"`
		}
		body := encodeBulk(ms)
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("bulk body %s is not JSON: %v", body, err)
		}
		if len(got) != len(ms) {
			t.Fatalf("%d entries decoded, want %d", len(got), len(ms))
		}
		for i, e := range got {
			m := ms[i]
			md := map[string]string{}
			for k, v := range map[string]string{"cloudevent.id": m.ID, "cloudevent.type": m.Type, "partitionKey": m.PartitionKey,
				"cloudevent.traceparent": m.TraceParent} {
				if v != "" {
					md[k] = roundTrip(t, v)
				}
			}
			if m.TraceParent != "" && m.TraceState != "" {
				md["cloudevent.tracestate"] = roundTrip(t, m.TraceState)
			}
			ct := m.ContentType
			if ct == "" {
				ct = "application/json"
			}
			if e.EntryID != strconv.Itoa(i) || e.ContentType != roundTrip(t, ct) || string(e.Event) != string(m.Data) || !maps.Equal(e.Metadata, md) {
				t.Errorf("entry %d = %+v, want event %s and metadata %v", i, e, m.Data, md)
			}
		}
	})
}

// roundTrip is what encoding/json makes of s (invalid UTF-8 becomes U+FFFD).
func roundTrip(t *testing.T, s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var out string
	_ = json.Unmarshal(b, &out)
	return out
}

func BenchmarkPublishURL(b *testing.B) {
	topic := New(Options{BaseURL: "http://127.0.0.1:3500"}).Topic("pubsub", "task-events")
	m := Message{ID: "3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b", Type: "task.created", PartitionKey: "3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b"}
	b.ReportAllocs()
	for b.Loop() {
		_ = topic.publishURL(m)
	}
}

func BenchmarkEncodeBulk100(b *testing.B) {
	ms := make([]Message, 100)
	for i := range ms {
		id := "3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a" + strconv.Itoa(100+i)
		ms[i] = Message{Data: []byte(`{"event_type":"task.created","task_id":"` + id + `","title":"Benchmark the publisher"}`),
			ID: id, Type: "task.created", PartitionKey: id}
	}
	b.ReportAllocs()
	for b.Loop() {
		if body := encodeBulk(ms); len(body) == 0 {
			b.Fatal("empty body")
		}
	}
}
