package publish

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzEncode checks the hand-built event against encoding/json byte for
// byte, and that its message carries the task id as CloudEvent id and
// partition key, the event type and the trace context. (kit/sidecar's
// FuzzEncodeBulk checks how a bulk body carries them.)
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
		got := appendEvent(nil, ev)
		if !bytes.Equal(got, bytes.TrimSuffix(want.Bytes(), []byte("\n"))) {
			t.Fatalf("appendEvent = %s\nencoding/json  %s", got, want.Bytes())
		}
		m := message(entry{ev: ev, trace: TraceContext{TraceParent: traceparent, TraceState: tracestate}}, got)
		if m.ID != id || m.PartitionKey != id || m.Type != "task.created" || m.ContentType != "" ||
			m.TraceParent != traceparent || m.TraceState != tracestate || !bytes.Equal(m.Data, got) {
			t.Errorf("message = %+v, want the task id as id and partition key, the type and the trace context", m)
		}
	})
}
