package tracingtest

import (
	"context"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Discard is an exporter that drops every span: benchmarks use it behind the
// real batch processor to measure what tracing costs the app, not a network.
type Discard struct{}

// ExportSpans drops spans.
func (Discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }

// Shutdown does nothing.
func (Discard) Shutdown(context.Context) error { return nil }
