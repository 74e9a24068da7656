package tracing

import (
	"context"
	"net"
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

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
