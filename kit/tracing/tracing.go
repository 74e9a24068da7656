// Package tracing gives an app its OpenTelemetry tracer and the W3C trace
// context helpers its routes use to continue a caller's trace.
//
// Whether tracing is on is decided from the environ run is given (see
// parse); everything else is read by the SDK and its exporters from the
// process environment, as they document: OTEL_EXPORTER_OTLP_*,
// OTEL_TRACES_SAMPLER(_ARG), OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES,
// OTEL_BSP_*. In the apps environ is the process environment. Off, the
// tracer is a no-op, no exporter or goroutine exists, and the routes skip
// every span.
package tracing

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// scope names the instrumentation in every span the apps record.
const scope = "github.com/taskevents/taskevents/kit/tracing"

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
	settings settings
	service  string
	provider *sdktrace.TracerProvider // nil when off
	tracer   trace.Tracer
}

// New builds the tracer that environ asks for, or returns a config error
// naming the variable. When tracing is on, Shutdown flushes what is queued.
func New(ctx context.Context, environ []string, o Options) (*Tracing, error) {
	s, err := parse(environ)
	if err != nil || (len(s.exporters) == 0 && o.Exporter == nil) {
		return &Tracing{settings: s}, err
	}
	// Later detectors win: the environment's names over the app's default.
	res, err := resource.New(ctx, resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithAttributes(semconv.ServiceName(o.ServiceName)), resource.WithTelemetrySDK(), resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("config: OTEL_RESOURCE_ATTRIBUTES or OTEL_SERVICE_NAME: %w", err)
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	exporters := []sdktrace.SpanExporter{o.Exporter}
	if o.Exporter == nil {
		exporters = exporters[:0]
		for _, name := range s.exporters {
			var e sdktrace.SpanExporter
			switch {
			case name == exporterConsole:
				e, err = stdouttrace.New(stdouttrace.WithWriter(o.Console))
			case s.protocol == "grpc":
				e, err = otlptracegrpc.New(ctx)
			default:
				e, err = otlptracehttp.New(ctx)
			}
			if err != nil {
				return nil, fmt.Errorf("tracing: %s exporter: %w", name, err)
			}
			exporters = append(exporters, e)
		}
	}
	for _, e := range exporters {
		opts = append(opts, sdktrace.WithBatcher(e))
	}
	// The SDK reports failed exports to the global handler, which would
	// print them to stderr unformatted.
	log := o.Logger.With().Str("component", "tracing").Logger()
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn().Err(err).Msg("tracing: the OpenTelemetry SDK reported an error; spans may be lost")
	}))
	service, _ := res.Set().Value(semconv.ServiceNameKey)
	p := sdktrace.NewTracerProvider(opts...)
	return &Tracing{settings: s, service: service.AsString(), provider: p, tracer: p.Tracer(scope)}, nil
}

// Enabled reports whether spans are recorded. Callers skip all span work
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
	e.Bool("tracing", t.Enabled())
	if !t.Enabled() {
		return
	}
	s := t.settings
	e.Str("otel_service_name", t.service).Strs("otel_traces_exporter", s.exporters).Str("otel_traces_sampler", s.sampler)
	if slices.Contains(s.exporters, exporterOTLP) {
		e.Str("otel_exporter_otlp_endpoint", s.endpoint).Str("otel_exporter_otlp_protocol", s.protocol)
	}
}

const (
	exporterOTLP    = "otlp"
	exporterConsole = "console"
)

// settings are the few OTEL_* choices the SDK leaves to the app.
type settings struct {
	exporters []string // otlp, console or both; empty is tracing off
	sampler   string
	protocol  string // http/protobuf, http/json or grpc
	endpoint  string // OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, for the start-up log line
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
	bad := func(name, why string) {
		errs = append(errs, fmt.Errorf("config: %s has an invalid value %q: %s", name, vars[name], why))
	}
	// first is a signal's own variable (OTEL_EXPORTER_OTLP_TRACES_…) if set, else the general one.
	first := func(general string) (string, string) {
		own := strings.Replace(general, "OTLP_", "OTLP_TRACES_", 1)
		if vars[own] != "" {
			return own, vars[own]
		}
		return general, vars[general]
	}

	s := settings{sampler: cmp.Or(vars["OTEL_TRACES_SAMPLER"], "parentbased_always_on")}
	if !slices.Contains(samplers, s.sampler) {
		bad("OTEL_TRACES_SAMPLER", "want one of "+strings.Join(samplers, ", "))
	}
	if arg := vars["OTEL_TRACES_SAMPLER_ARG"]; arg != "" && strings.HasSuffix(s.sampler, "traceidratio") {
		if r, err := strconv.ParseFloat(arg, 64); err != nil || r < 0 || r > 1 {
			bad("OTEL_TRACES_SAMPLER_ARG", "want a sampling ratio between 0 and 1, such as 0.25")
		}
	}
	name, protocol := first("OTEL_EXPORTER_OTLP_PROTOCOL")
	if s.protocol = cmp.Or(protocol, "http/protobuf"); !slices.Contains(protocols, s.protocol) {
		bad(name, "want one of "+strings.Join(protocols, ", "))
	}
	name, endpoint := first("OTEL_EXPORTER_OTLP_ENDPOINT")
	if u, err := url.Parse(endpoint); endpoint != "" && (err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https")) {
		bad(name, "want an http:// or https:// URL such as http://otel-collector:"+map[bool]string{true: "4317", false: "4318"}[s.protocol == "grpc"])
	}
	switch v := vars["OTEL_TRACES_EXPORTER"]; {
	case v == "" && endpoint != "":
		s.exporters = []string{exporterOTLP}
	case v == "" || v == "none":
	default:
		for e := range strings.SplitSeq(v, ",") {
			switch e = strings.TrimSpace(e); {
			case e == "none":
				bad("OTEL_TRACES_EXPORTER", "none cannot be combined with other exporters")
			case e != exporterOTLP && e != exporterConsole:
				bad("OTEL_TRACES_EXPORTER", "want otlp, console, otlp,console or none")
			case !slices.Contains(s.exporters, e):
				s.exporters = append(s.exporters, e)
			}
		}
	}
	disabled := strings.ToLower(vars["OTEL_SDK_DISABLED"])
	if disabled != "" && disabled != "true" && disabled != "false" {
		bad("OTEL_SDK_DISABLED", "want true or false")
	}
	if len(errs) > 0 {
		return settings{}, errors.Join(errs...)
	}
	if disabled == "true" {
		s.exporters = nil
	}
	s.endpoint = endpoint
	return s, nil
}
