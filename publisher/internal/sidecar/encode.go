package sidecar

import (
	"strconv"

	"github.com/taskevents/taskevents/publisher/internal/jsonstr"
)

// The request bodies are built by appending rather than with encoding/json:
// they are a few fixed keys around strings, and reflection, the map of
// per-entry metadata and re-validating the nested event cost more than the
// rest of a bulk request's preparation. fuzz_encode_test.go checks that the
// bytes are the ones encoding/json writes.

// encodeEvent is the event as JSON, with "<" and "&" kept as they are so
// that titles stay readable in the broker.
func encodeEvent(ev TaskCreated) []byte {
	return appendEvent(make([]byte, 0, 64+len(ev.TaskID)+len(ev.Title)), ev)
}

func appendEvent(b []byte, ev TaskCreated) []byte {
	b = append(b, `{"event_type":`...)
	b = jsonstr.Append(b, ev.EventType)
	b = append(b, `,"task_id":`...)
	b = jsonstr.Append(b, ev.TaskID)
	b = append(b, `,"title":`...)
	b = jsonstr.Append(b, ev.Title)
	return append(b, '}')
}

// encodeBulk builds daprd's bulk publish body: one entry per event, each
// with its own metadata. Entry ids are the indexes, unique within a request
// even when two entries carry the same task id (an idempotent retry racing
// its original).
func encodeBulk(entries []Entry) []byte {
	b := make([]byte, 0, len(entries)*320)
	b = append(b, '[')
	for i, e := range entries {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"entryId":"`...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, `","event":`...)
		b = appendEvent(b, e.Event)
		b = append(b, `,"contentType":"application/json","metadata":{"cloudevent.id":`...)
		b = jsonstr.Append(b, e.Event.TaskID)
		b = append(b, `,"cloudevent.type":"`+EventTypeTaskCreated+`","partitionKey":`...)
		b = jsonstr.Append(b, e.Event.TaskID)
		if e.Trace.TraceParent != "" {
			b = append(b, `,"cloudevent.traceparent":`...)
			b = jsonstr.Append(b, e.Trace.TraceParent)
			if e.Trace.TraceState != "" {
				b = append(b, `,"cloudevent.tracestate":`...)
				b = jsonstr.Append(b, e.Trace.TraceState)
			}
		}
		b = append(b, "}}"...)
	}
	return append(b, ']')
}
