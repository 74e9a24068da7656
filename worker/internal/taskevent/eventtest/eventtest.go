// Package eventtest holds the delivery fixtures the worker's tests share: one daprd-shaped
// envelope, so the parser's tests and the HTTP handler's tests exercise the same bytes.
package eventtest

import (
	"strings"
	"testing"
)

// Identifiers inside DaprdEnvelope.
const (
	TaskID      = "3f0c8a51-6b7e-4d2a-9c1e-2b5d7f9a0c11"
	EventID     = "5929aaac-a5e2-4ca1-859c-edfe73f11565"
	TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
)

// TaskJSON is the publisher's payload, the envelope's data.
const TaskJSON = `{"event_type":"task.created","task_id":"` + TaskID + `","title":"Learn Dapr pub/sub"}`

// DaprdEnvelope is a delivery exactly as daprd 1.16-1.18 sends it for a publish with
// Content-Type: application/json: daprd wraps the body as the envelope's data, with
// datacontenttype application/json (dapr/components-contrib pubsub/envelope.go).
const DaprdEnvelope = `{"topic":"task-events","pubsubname":"pubsub","traceid":"` + TraceParent + `","tracestate":"",` +
	`"data":` + TaskJSON + `,` +
	`"id":"` + EventID + `","specversion":"1.0","datacontenttype":"application/json","source":"task-api",` +
	`"type":"task.created","time":"2026-11-27T16:00:00Z","traceparent":"` + TraceParent + `"}`

// Edit returns DaprdEnvelope with each (old, new) pair replaced once; every old string must
// occur, so a fixture edit that silently matches nothing fails the test.
func Edit(t testing.TB, pairs ...string) string {
	t.Helper()
	s := DaprdEnvelope
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("envelope does not contain %q", pairs[i])
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	return s
}
