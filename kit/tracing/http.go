package tracing

import (
	"context"
	"net"
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// propagator is W3C Trace Context: what daprd reads and writes.
var propagator = propagation.TraceContext{}

// Extract returns ctx with the remote span context of header's traceparent
// and tracestate, if they are valid.
func Extract(ctx context.Context, header http.Header) context.Context {
	return propagator.Extract(ctx, propagation.HeaderCarrier(header))
}

// ExtractFrom is Extract for a trace context carried in a body (a bulk
// delivery's CloudEvent) rather than in headers.
func ExtractFrom(ctx context.Context, traceparent, tracestate string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return propagator.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent, "tracestate": tracestate})
}

// Inject returns the traceparent and tracestate of the span in ctx, as they
// go to daprd; both are empty when ctx has no valid span.
func Inject(ctx context.Context) (traceparent, tracestate string) {
	m := propagation.MapCarrier{}
	propagator.Inject(ctx, m)
	return m["traceparent"], m["tracestate"]
}

// TraceID is span's trace id, for the trace_id log field that joins log
// lines to traces; empty for a nil span or one without a trace id.
func TraceID(span trace.Span) string {
	if span == nil || !span.SpanContext().HasTraceID() {
		return ""
	}
	return span.SpanContext().TraceID().String()
}

// Fail marks span as failed with err (nothing when err is nil).
func Fail(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
}

// StartServer starts the server span of r, served by route (a pattern such
// as "/tasks"), named "METHOD route" as the HTTP conventions name it. Its
// parent is whatever span context ctx holds: Extract's, for a request that
// continues its caller's trace. opts may add attributes, links or a start
// time (trace.WithTimestamp) to backdate the span to the request's arrival.
func (t *Tracing) StartServer(ctx context.Context, r *http.Request, route string,
	opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	attrs := make([]attribute.KeyValue, 0, 7)
	attrs = append(attrs,
		semconv.HTTPRequestMethodKey.String(r.Method),
		semconv.HTTPRoute(route),
		semconv.URLPath(r.URL.Path),
		semconv.URLScheme("http"),
		semconv.NetworkProtocolVersion(strconv.Itoa(r.ProtoMajor)+"."+strconv.Itoa(r.ProtoMinor)))
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		attrs = append(attrs, semconv.ClientAddress(host))
	}
	if ua := r.UserAgent(); ua != "" {
		attrs = append(attrs, semconv.UserAgentOriginal(ua))
	}
	opts = append(opts, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
	return t.Tracer().Start(ctx, r.Method+" "+route, opts...)
}

// EndServer records the answer's status code on a server span and ends it.
// A 5xx marks the span failed; a 4xx is the client's error, not the
// server's, and does not.
func EndServer(span trace.Span, code int) {
	if code == 0 {
		code = http.StatusOK // net/http's answer when a handler writes nothing
	}
	span.SetAttributes(semconv.HTTPResponseStatusCode(code))
	if code >= http.StatusInternalServerError {
		span.SetAttributes(semconv.ErrorTypeKey.String(strconv.Itoa(code)))
		span.SetStatus(codes.Error, http.StatusText(code))
	}
	span.End()
}
