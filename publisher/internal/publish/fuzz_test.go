package sidecar

import (
	"bytes"
	"encoding/json"
	"maps"
	"strconv"
	"testing"
)

// FuzzEncode checks the hand-built bodies against encoding/json: the event
// byte for byte, and the bulk body by what daprd decodes from it.
func FuzzEncode(f *testing.F) {
	f.Add("3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b", "Fish & <chips>", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "congo=t61rcWkgMzE")
	f.Add("a\"b\\c", "tab\tnew\nline\u2028\u2029\x00\x1f\x7f", "", "st")
	f.Add("\xff\xfe", "é 日本 \xed\xa0\x80 \U0001F600", "tp", "")
	f.Fuzz(func(t *testing.T, id, title, traceparent, tracestate string) {
		ev := NewTaskCreated(id, title)
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(ev); err != nil {
			t.Fatal(err)
		}
		if got := encodeEvent(ev); !bytes.Equal(got, bytes.TrimSuffix(want.Bytes(), []byte("\n"))) {
			t.Fatalf("encodeEvent = %s\nencoding/json  %s", got, want.Bytes())
		}

		entries := []Entry{{Event: ev, Trace: TraceContext{TraceParent: traceparent, TraceState: tracestate}}, {Event: ev}}
		var got []struct {
			EntryID     string            `json:"entryId"`
			Event       TaskCreated       `json:"event"`
			ContentType string            `json:"contentType"`
			Metadata    map[string]string `json:"metadata"`
		}
		body := encodeBulk(entries)
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("bulk body %s is not JSON: %v", body, err)
		}
		if len(got) != len(entries) {
			t.Fatalf("%d entries decoded, want %d", len(got), len(entries))
		}
		// What encoding/json would make of the same strings (invalid UTF-8
		// becomes U+FFFD in both).
		var clean TaskCreated
		_ = json.Unmarshal(want.Bytes(), &clean)
		for i, e := range got {
			md := map[string]string{"cloudevent.id": clean.TaskID, "cloudevent.type": "task.created", "partitionKey": clean.TaskID}
			if tr := entries[i].Trace; tr.TraceParent != "" {
				md["cloudevent.traceparent"] = roundTrip(t, tr.TraceParent)
				if tr.TraceState != "" {
					md["cloudevent.tracestate"] = roundTrip(t, tr.TraceState)
				}
			}
			if e.EntryID != strconv.Itoa(i) || e.ContentType != "application/json" || e.Event != clean || !maps.Equal(e.Metadata, md) {
				t.Errorf("entry %d = %+v, want event %+v and metadata %v", i, e, clean, md)
			}
		}
	})
}

func roundTrip(t *testing.T, s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var out string
	_ = json.Unmarshal(b, &out)
	return out
}
