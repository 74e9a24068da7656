// Package tracingtest reads the spans an app writes among its log lines with
// OTEL_TRACES_EXPORTER=console, so that run's tests see what it exports
// without a collector.
package tracingtest

import (
	"bytes"
	"encoding/json"

	"go.opentelemetry.io/otel/trace"
)

// Span is what tests assert on in a line of the console exporter.
type Span struct {
	Name        string
	SpanKind    trace.SpanKind
	SpanContext struct{ TraceID, SpanID string }
	Parent      struct{ SpanID string }
	Resource    []struct {
		Key   string
		Value struct{ Value any }
	}
}

// Service is the span's service.name.
func (s Span) Service() string {
	for _, kv := range s.Resource {
		if v, ok := kv.Value.Value.(string); ok && kv.Key == "service.name" {
			return v
		}
	}
	return ""
}

// Named returns the spans called name among out's lines.
func Named(out []byte, name string) (spans []Span) {
	for line := range bytes.Lines(out) {
		var s Span
		if json.Unmarshal(line, &s) == nil && s.Name == name && s.SpanContext.SpanID != "" {
			spans = append(spans, s)
		}
	}
	return spans
}
