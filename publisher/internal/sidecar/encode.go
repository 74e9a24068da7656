package sidecar

import (
	"strconv"
	"unicode/utf8"
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
	b = appendString(b, ev.EventType)
	b = append(b, `,"task_id":`...)
	b = appendString(b, ev.TaskID)
	b = append(b, `,"title":`...)
	b = appendString(b, ev.Title)
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
		b = appendString(b, e.Event.TaskID)
		b = append(b, `,"cloudevent.type":"`+EventTypeTaskCreated+`","partitionKey":`...)
		b = appendString(b, e.Event.TaskID)
		if e.Trace.TraceParent != "" {
			b = append(b, `,"cloudevent.traceparent":`...)
			b = appendString(b, e.Trace.TraceParent)
			if e.Trace.TraceState != "" {
				b = append(b, `,"cloudevent.tracestate":`...)
				b = appendString(b, e.Trace.TraceState)
			}
		}
		b = append(b, "}}"...)
	}
	return append(b, ']')
}

// appendString appends s as a JSON string the way encoding/json does with
// SetEscapeHTML(false): quotes, backslashes and control characters escaped,
// invalid UTF-8 replaced by U+FFFD, and U+2028 and U+2029 escaped (they end
// lines in JavaScript).
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
