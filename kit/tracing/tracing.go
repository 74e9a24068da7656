// Package tracing gives an app its OpenTelemetry tracer and the W3C trace
// context helpers its routes use to continue a caller's trace.
//
// Whether tracing is on is decided from the environ run is given (see
// parse); everything else is read by the SDK and its exporters from the
// process environment, as they document: OTEL_EXPORTER_OTLP_*,
// OTEL_TRACES_SAMPLER(_ARG), OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES,
// OTEL_BSP_*. Off, the tracer is a no-op and no exporter or goroutine exists.
package tracing

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Options configure New.
type Options struct {
	// ServiceName is service.name unless OTEL_SERVICE_NAME (or
	// OTEL_RESOURCE_ATTRIBUTES) says otherwise. It must differ from the
	// app-id, under which daprd reports its own spans.
	ServiceName string
	Console     io.Writer      // the console exporter's spans, one JSON object a line
	Logger      zerolog.Logger // the SDK's export errors, at warn
	// Exporter, when not nil (tests, benchmarks), turns tracing on and
	// replaces OTEL_TRACES_EXPORTER's exporters, behind the same batcher.
	Exporter sdktrace.SpanExporter
}

// Tracing is the app's tracer. A nil *Tracing is tracing off.
type Tracing struct {
	provider *sdktrace.TracerProvider // nil when off
	tracer   trace.Tracer
	fields   []any // the settings Log adds
}

// New builds the tracer that environ asks for, or returns a config error
// naming the variable. When tracing is on, Shutdown flushes what is queued.
func New(ctx context.Context, environ []string, o Options) (*Tracing, error) {
	s, err := parse(environ)
	if err != nil || (len(s.exporters) == 0 && o.Exporter == nil) {
		return &Tracing{}, err
	}
	// Later detectors win: the environment's names over the app's default.
	res, err := resource.New(ctx, resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithAttributes(semconv.ServiceName(o.ServiceName)), resource.WithTelemetrySDK(), resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("config: OTEL_RESOURCE_ATTRIBUTES or OTEL_SERVICE_NAME: %w", err)
	}
	opts, names := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}, s.exporters
	if o.Exporter != nil {
		opts, names = append(opts, sdktrace.WithBatcher(o.Exporter)), nil
	}
	for _, name := range names {
		var e sdktrace.SpanExporter
		switch {
		case name == "console":
			e, err = stdouttrace.New(stdouttrace.WithWriter(o.Console))
		case s.protocol == "grpc":
			e, err = otlptracegrpc.New(ctx)
		default:
			e, err = otlptracehttp.New(ctx)
		}
		if err != nil {
			return nil, fmt.Errorf("tracing: %s exporter: %w", name, err)
		}
		opts = append(opts, sdktrace.WithBatcher(e))
	}
	// The SDK reports failed exports to the global handler, which would
	// print them to stderr unformatted.
	log := o.Logger.With().Str("component", "tracing").Logger()
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn().Err(err).Msg("tracing: the OpenTelemetry SDK reported an error; spans may be lost")
	}))
	service, _ := res.Set().Value(semconv.ServiceNameKey)
	fields := []any{"otel_service_name", service.AsString(), "otel_traces_exporter", s.exporters, "otel_traces_sampler", s.sampler}
	if slices.Contains(s.exporters, "otlp") {
		fields = append(fields, "otel_exporter_otlp_endpoint", s.endpoint, "otel_exporter_otlp_protocol", s.protocol)
	}
	p := sdktrace.NewTracerProvider(opts...)
	return &Tracing{provider: p, tracer: p.Tracer("github.com/taskevents/taskevents/kit/tracing"), fields: fields}, nil
}

// Enabled reports whether spans are recorded; callers skip all span work
// when it is false.
func (t *Tracing) Enabled() bool { return t != nil && t.provider != nil }

// Tracer is the app's tracer: a no-op one when tracing is off.
func (t *Tracing) Tracer() trace.Tracer {
	if !t.Enabled() {
		return noop.Tracer{}
	}
	return t.tracer
}

// ForceFlush exports every ended span now.
func (t *Tracing) ForceFlush(ctx context.Context) error {
	if !t.Enabled() {
		return nil
	}
	return t.provider.ForceFlush(ctx)
}

// Shutdown exports the spans still queued, within ctx, and stops the
// exporters. Spans ended after it are dropped.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if !t.Enabled() {
		return nil
	}
	if err := t.provider.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: flushing spans at shutdown: %w", err)
	}
	return nil
}

// Log adds what tracing does to a start-up log line (zerolog's Event.Func).
func (t *Tracing) Log(e *zerolog.Event) {
	if e.Bool("tracing", t.Enabled()); t.Enabled() {
		e.Fields(t.fields)
	}
}

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
// as "/tasks"), named "METHOD route" as the HTTP conventions name it, under
// the span context ctx holds (Extract's, to continue the caller's trace).
// opts may add attributes, links or a start time (trace.WithTimestamp).
func (t *Tracing) StartServer(ctx context.Context, r *http.Request, route string,
	opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	opts = append(opts, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
		semconv.HTTPRequestMethodKey.String(r.Method), semconv.HTTPRoute(route), semconv.URLPath(r.URL.Path), semconv.URLScheme("http")))
	return t.Tracer().Start(ctx, r.Method+" "+route, opts...)
}

// EndServer records the answer's status code on a server span and ends it.
// A 5xx marks the span failed; a 4xx is the client's error and does not.
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

// settings are the few OTEL_* choices the SDK leaves to the app.
type settings struct {
	exporters                   []string // otlp, console or both; empty is tracing off
	sampler, protocol, endpoint string
}

var (
	samplers = []string{"always_on", "always_off", "traceidratio",
		"parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"}
	protocols = []string{"http/protobuf", "http/json", "grpc"}
)

// parse reads the OTEL_* variables of environ. Unlike the SDK's default
// (otlp to localhost), nothing set means off, so that an app without a
// collector pays nothing: tracing is on when an OTLP endpoint is set or
// OTEL_TRACES_EXPORTER names otlp or console, and off when it is none or
// OTEL_SDK_DISABLED is true. It also refuses the values the SDK would
// silently replace by its defaults, so that a typo stops the app at start.
func parse(environ []string) (settings, error) {
	vars := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "OTEL_") {
			vars[k] = strings.TrimSpace(v)
		}
	}
	var errs []error
	check := func(name string, ok bool, want string) {
		if !ok {
			errs = append(errs, fmt.Errorf("config: %s has an invalid value %q: %s", name, vars[name], want))
		}
	}
	// A signal's own variable (OTEL_EXPORTER_OTLP_TRACES_…), if set, wins.
	otlp := func(general string) string {
		if own := strings.Replace(general, "OTLP_", "OTLP_TRACES_", 1); vars[own] != "" {
			return own
		}
		return general
	}
	protocol, endpoint := otlp("OTEL_EXPORTER_OTLP_PROTOCOL"), otlp("OTEL_EXPORTER_OTLP_ENDPOINT")
	s := settings{sampler: cmp.Or(vars["OTEL_TRACES_SAMPLER"], "parentbased_always_on"),
		protocol: cmp.Or(vars[protocol], "http/protobuf"), endpoint: vars[endpoint]}
	check("OTEL_TRACES_SAMPLER", slices.Contains(samplers, s.sampler), "want one of "+strings.Join(samplers, ", "))
	arg := vars["OTEL_TRACES_SAMPLER_ARG"]
	r, err := strconv.ParseFloat(arg, 64)
	check("OTEL_TRACES_SAMPLER_ARG", arg == "" || !strings.HasSuffix(s.sampler, "traceidratio") || err == nil && !(r < 0 || r > 1),
		"want a sampling ratio between 0 and 1, such as 0.25")
	check(protocol, slices.Contains(protocols, s.protocol), "want one of "+strings.Join(protocols, ", "))
	u, err := url.Parse(s.endpoint)
	check(endpoint, s.endpoint == "" || err == nil && u.Host != "" && (u.Scheme == "http" || u.Scheme == "https"),
		"want an http:// or https:// URL such as http://otel-collector:"+map[bool]string{true: "4317", false: "4318"}[s.protocol == "grpc"])
	// Headers often carry an API key, and the SDK prints an entry it cannot
	// read: refuse it here instead, naming its position, never its value.
	headers := otlp("OTEL_EXPORTER_OTLP_HEADERS")
	for i, h := range strings.Split(vars[headers], ",") {
		if k, _, ok := strings.Cut(h, "="); strings.TrimSpace(h) != "" && (!ok || strings.TrimSpace(k) == "") {
			errs = append(errs, fmt.Errorf("config: %s is malformed: entry %d is not key=value; "+
				"its value is not shown because it may hold credentials", headers, i+1))
			break
		}
	}
	switch v := vars["OTEL_TRACES_EXPORTER"]; {
	case v == "" && s.endpoint != "":
		s.exporters = []string{"otlp"}
	case v != "" && v != "none":
		for e := range strings.SplitSeq(v, ",") {
			e = strings.TrimSpace(e)
			check("OTEL_TRACES_EXPORTER", e != "none", "none cannot be combined with other exporters")
			check("OTEL_TRACES_EXPORTER", e == "none" || e == "otlp" || e == "console", "want otlp, console, otlp,console or none")
			if !slices.Contains(s.exporters, e) {
				s.exporters = append(s.exporters, e)
			}
		}
	}
	disabled := strings.ToLower(vars["OTEL_SDK_DISABLED"])
	check("OTEL_SDK_DISABLED", disabled == "" || disabled == "true" || disabled == "false", "want true or false")
	if len(errs) > 0 {
		return settings{}, errors.Join(errs...)
	}
	if disabled == "true" {
		s.exporters = nil
	}
	return s, nil
}
