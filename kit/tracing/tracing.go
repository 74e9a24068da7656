// Package tracing gives the app its OpenTelemetry tracer, configured by the
// standard OTEL_* variables of the environment run is given, and the W3C
// trace context helpers the routes use to continue a caller's trace.
//
// Tracing is off unless asked for (see ParseSettings). Off, Enabled is
// false, the tracer is a no-op, no exporter or goroutine exists, and the
// routes skip every span: they pass the traceparent through as they did
// before tracing existed.
package tracing

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
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
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// scope names the instrumentation in every span this app records.
const scope = "github.com/taskevents/taskevents/kit/tracing"

// The batch processor's settings: the SDK's defaults, passed explicitly so
// that the OTEL_BSP_* variables of the process do not count (only environ
// does).
const (
	batchTimeout  = 5 * time.Second
	exportTimeout = 30 * time.Second
	maxQueue      = 2048
	maxBatch      = 512
)

// Options configure New.
type Options struct {
	// ServiceName is service.name unless OTEL_SERVICE_NAME (or service.name
	// in OTEL_RESOURCE_ATTRIBUTES) says otherwise. It must differ from the
	// app-id: daprd reports its own spans under the app-id.
	ServiceName string
	// Console receives the console exporter's spans, one JSON object a line
	// (the app's stdout).
	Console io.Writer
	// Logger gets the SDK's export errors, at warn.
	Logger zerolog.Logger
	// Exporter, when not nil, turns tracing on and replaces the exporters
	// OTEL_TRACES_EXPORTER names, behind the same batch processor: tests
	// and benchmarks use it.
	Exporter sdktrace.SpanExporter
}

// Tracing is the app's tracer. A nil *Tracing is tracing off.
type Tracing struct {
	settings Settings
	provider *sdktrace.TracerProvider // nil when off
	tracer   trace.Tracer
}

// New builds the tracer that environ asks for. It returns a config error
// naming the variable when a value is bad. When tracing is on, Shutdown must
// be called to flush the spans still queued.
func New(ctx context.Context, environ []string, o Options) (*Tracing, error) {
	s, err := ParseSettings(environ, o.ServiceName)
	if err != nil {
		return nil, err
	}
	t := &Tracing{settings: s, tracer: noop.NewTracerProvider().Tracer(scope)}
	if !s.On() && o.Exporter == nil {
		return t, nil
	}
	res := resource.NewWithAttributes(semconv.SchemaURL,
		append([]attribute.KeyValue{semconv.ServiceName(s.ServiceName),
			semconv.TelemetrySDKLanguageGo, semconv.TelemetrySDKName("opentelemetry"),
			semconv.TelemetrySDKVersion(otel.Version())}, s.Attributes...)...)

	var exporters []sdktrace.SpanExporter
	if o.Exporter != nil {
		exporters = append(exporters, o.Exporter)
	} else {
		if exporters, err = s.newExporters(ctx, o.Console); err != nil {
			return nil, err
		}
		if len(exporters) == 0 {
			s.Exporters = nil
			t.settings = s
			return t, nil
		}
	}
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithSampler(s.sampler()),
		sdktrace.WithRawSpanLimits(defaultLimits()),
		sdktrace.WithResource(res),
	}
	for _, e := range exporters {
		opts = append(opts, sdktrace.WithSpanProcessor(sdktrace.NewBatchSpanProcessor(ownResource{e, res},
			sdktrace.WithBatchTimeout(batchTimeout), sdktrace.WithExportTimeout(exportTimeout),
			sdktrace.WithMaxQueueSize(maxQueue), sdktrace.WithMaxExportBatchSize(maxBatch))))
	}
	// The SDK reports failed exports through the global handler, which
	// would print them to stderr unformatted.
	log := o.Logger.With().Str("component", "tracing").Logger()
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn().Err(err).Msg("tracing: the OpenTelemetry SDK reported an error; spans may be lost")
	}))
	t.provider = sdktrace.NewTracerProvider(opts...)
	t.tracer = t.provider.Tracer(scope)
	return t, nil
}

// Enabled reports whether spans are recorded. Callers skip all span work
// when it is false.
func (t *Tracing) Enabled() bool { return t != nil && t.provider != nil }

// Tracer is the app's tracer: a no-op one when tracing is off.
func (t *Tracing) Tracer() trace.Tracer {
	if t == nil {
		return noop.NewTracerProvider().Tracer(scope)
	}
	return t.tracer
}

// Provider is the tracer provider: a no-op one when tracing is off.
func (t *Tracing) Provider() trace.TracerProvider {
	if !t.Enabled() {
		return noop.NewTracerProvider()
	}
	return t.provider
}

// Settings are the settings tracing was built from.
func (t *Tracing) Settings() Settings {
	if t == nil {
		return Settings{}
	}
	return t.settings
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
	if !t.Enabled() {
		e.Bool("tracing", false)
		return
	}
	s := t.settings
	e.Bool("tracing", true).Str("otel_service_name", s.ServiceName).Strs("otel_traces_exporter", s.Exporters).
		Str("otel_traces_sampler", s.Sampler)
	if s.exports(ExporterOTLP) {
		e.Str("otel_exporter_otlp_endpoint", s.Endpoint).Str("otel_exporter_otlp_protocol", s.Protocol)
	}
}

// propagator is W3C Trace Context: what daprd reads and writes.
var propagator = propagation.TraceContext{}

// Extract returns ctx with the remote span context of header's traceparent
// and tracestate, if they are valid.
func Extract(ctx context.Context, header http.Header) context.Context {
	return propagator.Extract(ctx, propagation.HeaderCarrier(header))
}

// ExtractFrom returns ctx with the remote span context of traceparent and
// tracestate, if they are valid: for a trace context carried in a body (a
// bulk delivery's CloudEvent) rather than in headers.
func ExtractFrom(ctx context.Context, traceparent, tracestate string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return propagator.Extract(ctx, &pair{traceparent: traceparent, tracestate: tracestate})
}

// Inject returns the traceparent and tracestate of the span in ctx, as they
// go to daprd; both are empty when ctx has no valid span.
func Inject(ctx context.Context) (traceparent, tracestate string) {
	var p pair
	propagator.Inject(ctx, &p)
	return p.traceparent, p.tracestate
}

// pair is a TextMapCarrier of the two W3C fields, without a map.
type pair struct{ traceparent, tracestate string }

func (p *pair) Get(key string) string {
	switch key {
	case "traceparent":
		return p.traceparent
	case "tracestate":
		return p.tracestate
	}
	return ""
}

func (p *pair) Set(key, value string) {
	switch key {
	case "traceparent":
		p.traceparent = value
	case "tracestate":
		p.tracestate = value
	}
}

func (p *pair) Keys() []string { return []string{"traceparent", "tracestate"} }

// TraceID is span's trace id, for the trace_id log field that joins log
// lines to traces; empty for a nil span or one without a trace id.
func TraceID(span trace.Span) string {
	if span == nil {
		return ""
	}
	sc := span.SpanContext()
	if !sc.HasTraceID() {
		return ""
	}
	return sc.TraceID().String()
}

// Fail marks span as failed with err (nothing when err is nil).
func Fail(span trace.Span, err error) {
	if err == nil {
		return
	}
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
}

func (s Settings) sampler() sdktrace.Sampler {
	switch s.Sampler {
	case "always_on":
		return sdktrace.AlwaysSample()
	case "always_off":
		return sdktrace.NeverSample()
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(s.SamplerArg)
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample())
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(s.SamplerArg))
	default:
		return sdktrace.ParentBased(sdktrace.AlwaysSample())
	}
}

// defaultLimits are the SDK's default span limits, passed explicitly so that
// the OTEL_SPAN_* variables of the process do not count.
func defaultLimits() sdktrace.SpanLimits {
	return sdktrace.SpanLimits{
		AttributeValueLengthLimit:   sdktrace.DefaultAttributeValueLengthLimit,
		AttributeCountLimit:         sdktrace.DefaultAttributeCountLimit,
		EventCountLimit:             sdktrace.DefaultEventCountLimit,
		LinkCountLimit:              sdktrace.DefaultLinkCountLimit,
		AttributePerEventCountLimit: sdktrace.DefaultAttributePerEventCountLimit,
		AttributePerLinkCountLimit:  sdktrace.DefaultAttributePerLinkCountLimit,
	}
}

// newExporters builds the exporters s names. Every option the OTLP exporters
// would otherwise read from the process's own environment is passed
// explicitly, so that environ alone decides.
func (s Settings) newExporters(ctx context.Context, console io.Writer) ([]sdktrace.SpanExporter, error) {
	var out []sdktrace.SpanExporter
	if s.exports(ExporterConsole) {
		if console == nil {
			console = os.Stdout
		}
		e, err := stdouttrace.New(stdouttrace.WithWriter(console))
		if err != nil {
			return nil, fmt.Errorf("tracing: console exporter: %w", err)
		}
		out = append(out, e)
	}
	if s.exports(ExporterOTLP) {
		tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if s.Certificate != "" {
			pem, err := os.ReadFile(s.Certificate)
			if err != nil {
				return nil, fmt.Errorf("config: OTEL_EXPORTER_OTLP_CERTIFICATE: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("config: OTEL_EXPORTER_OTLP_CERTIFICATE: %s holds no PEM certificate", s.Certificate)
			}
			tlsCfg.RootCAs = pool
		}
		headers := s.Headers
		if headers == nil {
			headers = map[string]string{}
		}
		plain := strings.HasPrefix(s.Endpoint, "http:")
		var e sdktrace.SpanExporter
		var err error
		if s.Protocol == ProtocolGRPC {
			creds := credentials.NewTLS(tlsCfg)
			if plain {
				creds = insecure.NewCredentials()
			}
			opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpointURL(s.Endpoint),
				otlptracegrpc.WithTLSCredentials(creds), otlptracegrpc.WithHeaders(headers),
				otlptracegrpc.WithTimeout(s.Timeout)}
			if s.Gzip {
				opts = append(opts, otlptracegrpc.WithCompressor("gzip"))
			}
			e, err = otlptracegrpc.New(ctx, opts...)
		} else {
			enc, comp := otlptracehttp.EncodingProtobuf, otlptracehttp.NoCompression
			if s.Protocol == ProtocolHTTPJSON {
				enc = otlptracehttp.EncodingJSON
			}
			if s.Gzip {
				comp = otlptracehttp.GzipCompression
			}
			opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(s.Endpoint),
				otlptracehttp.WithEncoding(enc), otlptracehttp.WithCompression(comp),
				otlptracehttp.WithHeaders(headers), otlptracehttp.WithTimeout(s.Timeout)}
			if !plain {
				opts = append(opts, otlptracehttp.WithTLSClientConfig(tlsCfg))
			}
			e, err = otlptracehttp.New(ctx, opts...)
		}
		if err != nil {
			return nil, fmt.Errorf("tracing: OTLP exporter for %s: %w", s.Endpoint, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// ownResource exports spans under the resource built from environ. The SDK
// merges the process's OTEL_RESOURCE_ATTRIBUTES under any resource it is
// given; in the apps environ is the process environment, but a test's is
// not, and only environ may count.
type ownResource struct {
	sdktrace.SpanExporter
	res *resource.Resource
}

func (o ownResource) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	wrapped := make([]sdktrace.ReadOnlySpan, len(spans))
	for i, s := range spans {
		wrapped[i] = withResource{s, o.res}
	}
	return o.SpanExporter.ExportSpans(ctx, wrapped)
}

type withResource struct {
	sdktrace.ReadOnlySpan
	res *resource.Resource
}

func (w withResource) Resource() *resource.Resource { return w.res }
