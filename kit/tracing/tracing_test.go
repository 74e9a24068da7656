package tracing_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/taskevents/taskevents/kit/tracing"
)

const (
	parentTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	parentSpan  = "00f067aa0ba902b7"
	traceparent = "00-" + parentTrace + "-" + parentSpan + "-01"
)

// Off, nothing of the SDK exists: the provider and tracer are no-ops and
// their spans record nothing.
func TestOffBuildsNothing(t *testing.T) {
	for _, env := range [][]string{
		nil,
		{"OTEL_TRACES_EXPORTER=none", "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:1"},
		{"OTEL_SDK_DISABLED=true", "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:1"},
	} {
		t.Run(strings.Join(env, " "), func(t *testing.T) {
			tr, err := tracing.New(context.Background(), env, tracing.Options{ServiceName: "app"})
			if err != nil {
				t.Fatal(err)
			}
			if tr.Enabled() {
				t.Error("Enabled() with tracing off")
			}
			if _, ok := tr.Tracer().(noop.Tracer); !ok {
				t.Errorf("tracer %T, want the no-op one", tr.Tracer())
			}
			_, span := tr.Tracer().Start(context.Background(), "x")
			if span.IsRecording() {
				t.Error("a span records with tracing off")
			}
			if err := tr.Shutdown(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	var nilTracing *tracing.Tracing
	if nilTracing.Enabled() || nilTracing.Shutdown(context.Background()) != nil || nilTracing.Tracer() == nil {
		t.Error("a nil *Tracing is not tracing off")
	}
}

func TestNewRejectsBadSettings(t *testing.T) {
	_, err := tracing.New(context.Background(), []string{"OTEL_TRACES_SAMPLER=sometimes"}, tracing.Options{})
	if err == nil || !strings.Contains(err.Error(), `config: OTEL_TRACES_SAMPLER has an invalid value "sometimes"`) {
		t.Errorf("error %v", err)
	}
}

// setenv sets env in the process environment, where the SDK reads it, and
// returns it as the environ New is given, as run is in the apps.
func setenv(t *testing.T, env ...string) []string {
	t.Helper()
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	return env
}

// newRecording is tracing on with an in-memory exporter.
func newRecording(t *testing.T, env ...string) (*tracing.Tracing, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tr, err := tracing.New(context.Background(), setenv(t, env...), tracing.Options{ServiceName: "app", Exporter: exp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	return tr, exp
}

func ended(t *testing.T, tr *tracing.Tracing, exp *tracetest.InMemoryExporter) tracetest.SpanStubs {
	t.Helper()
	if err := tr.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	return exp.GetSpans()
}

func resourceOf(s tracetest.SpanStub) map[string]string {
	m := map[string]string{}
	for _, kv := range s.Resource.Attributes() {
		m[string(kv.Key)] = kv.Value.String()
	}
	return m
}

// The SDK builds the resource from OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES; the app's name is the default.
func TestResource(t *testing.T) {
	for _, tt := range []struct {
		env  []string
		want map[string]string
	}{
		{nil, map[string]string{"service.name": "app", "telemetry.sdk.language": "go"}},
		{[]string{"OTEL_RESOURCE_ATTRIBUTES=deployment.environment=test"},
			map[string]string{"service.name": "app", "deployment.environment": "test", "telemetry.sdk.language": "go"}},
		{[]string{"OTEL_SERVICE_NAME=billing"}, map[string]string{"service.name": "billing"}},
		{[]string{"OTEL_RESOURCE_ATTRIBUTES=service.name=from%20attrs, deployment.environment=prod,team=a%2Cb"},
			map[string]string{"service.name": "from attrs", "deployment.environment": "prod", "team": "a,b"}},
		{[]string{"OTEL_RESOURCE_ATTRIBUTES=service.name=a", "OTEL_SERVICE_NAME=b"}, map[string]string{"service.name": "b"}},
	} {
		t.Run(strings.Join(tt.env, " "), func(t *testing.T) {
			t.Setenv("OTEL_SERVICE_NAME", "")
			t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "")
			tr, exp := newRecording(t, tt.env...)
			_, span := tr.Tracer().Start(context.Background(), "x")
			span.End()
			spans := ended(t, tr, exp)
			if len(spans) != 1 {
				t.Fatalf("%d spans", len(spans))
			}
			res := resourceOf(spans[0])
			for k, v := range tt.want {
				if res[k] != v {
					t.Errorf("resource %v, want %s=%q", res, k, v)
				}
			}
		})
	}
}

// A resource attribute that is not key=value is refused at start.
func TestResourceErrors(t *testing.T) {
	env := setenv(t, "OTEL_RESOURCE_ATTRIBUTES=team", "OTEL_TRACES_EXPORTER=console")
	if _, err := tracing.New(context.Background(), env, tracing.Options{}); err == nil ||
		!strings.Contains(err.Error(), "config: OTEL_RESOURCE_ATTRIBUTES") {
		t.Errorf("error %v", err)
	}
}

func TestSampler(t *testing.T) {
	sampled := tracing.Extract(context.Background(), http.Header{"Traceparent": {traceparent}})
	unsampled := tracing.Extract(context.Background(), http.Header{"Traceparent": {"00-" + parentTrace + "-" + parentSpan + "-00"}})
	for _, tt := range []struct {
		env    []string
		parent context.Context
		want   bool
	}{
		{nil, context.Background(), true},
		{nil, unsampled, false}, // parentbased_always_on follows the caller's decision
		{[]string{"OTEL_TRACES_SAMPLER=always_on"}, unsampled, true},
		{[]string{"OTEL_TRACES_SAMPLER=always_off"}, sampled, false},
		{[]string{"OTEL_TRACES_SAMPLER=parentbased_always_off"}, context.Background(), false},
		{[]string{"OTEL_TRACES_SAMPLER=parentbased_always_off"}, sampled, true},
		{[]string{"OTEL_TRACES_SAMPLER=traceidratio", "OTEL_TRACES_SAMPLER_ARG=0"}, sampled, false},
		{[]string{"OTEL_TRACES_SAMPLER=parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG=0"}, context.Background(), false},
		{[]string{"OTEL_TRACES_SAMPLER=parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG=0"}, sampled, true},
	} {
		t.Run(strings.Join(tt.env, " "), func(t *testing.T) {
			tr, _ := newRecording(t, tt.env...)
			_, span := tr.Tracer().Start(tt.parent, "x")
			defer span.End()
			if span.IsRecording() != tt.want {
				t.Errorf("recording = %v, want %v", span.IsRecording(), tt.want)
			}
		})
	}
}

// A span started under Extract's context continues the caller's trace, and
// Inject writes that span's own context, as it goes to daprd.
func TestExtractInject(t *testing.T) {
	tr, exp := newRecording(t)
	h := http.Header{}
	h.Set("traceparent", traceparent)
	h.Set("tracestate", "vendor=opaque")
	ctx, span := tr.Tracer().Start(tracing.Extract(context.Background(), h), "child")
	tp, ts := tracing.Inject(ctx)
	span.End()
	sc := span.SpanContext()
	if want := "00-" + parentTrace + "-" + sc.SpanID().String() + "-01"; tp != want || ts != "vendor=opaque" {
		t.Errorf("injected %q %q, want %q vendor=opaque", tp, ts, want)
	}
	got := ended(t, tr, exp)[0]
	if got.Parent.SpanID().String() != parentSpan || !got.Parent.IsRemote() {
		t.Errorf("parent %v, want the remote %s", got.Parent.SpanID(), parentSpan)
	}

	// The same through ExtractFrom, as for a trace context read from a body.
	ctx = tracing.ExtractFrom(context.Background(), traceparent, "")
	if sc := trace.SpanContextFromContext(ctx); sc.TraceID().String() != parentTrace || !sc.IsRemote() {
		t.Errorf("ExtractFrom: %v", sc)
	}
	for _, bad := range []string{"", "garbage", "00-" + parentTrace + "-0000000000000000-01"} {
		if sc := trace.SpanContextFromContext(tracing.ExtractFrom(context.Background(), bad, "")); sc.IsValid() {
			t.Errorf("ExtractFrom(%q) is valid", bad)
		}
	}
	if tp, ts := tracing.Inject(context.Background()); tp != "" || ts != "" {
		t.Errorf("Inject without a span: %q %q", tp, ts)
	}
}

func TestTraceIDAndFail(t *testing.T) {
	tr, exp := newRecording(t)
	_, span := tr.Tracer().Start(tracing.Extract(context.Background(), http.Header{"Traceparent": {traceparent}}), "x")
	if got := tracing.TraceID(span); got != parentTrace {
		t.Errorf("TraceID = %q", got)
	}
	if tracing.TraceID(nil) != "" {
		t.Error("TraceID(nil) is not empty")
	}
	tracing.Fail(span, nil)
	tracing.Fail(span, errors.New("broker down"))
	span.End()
	got := ended(t, tr, exp)[0]
	if got.Status.Description != "broker down" || len(got.Events) != 1 {
		t.Errorf("status %+v, events %v", got.Status, got.Events)
	}
}

// The OTLP/HTTP exporter sends to the endpoint and with the headers environ
// names, and Shutdown flushes what is queued.
func TestOTLPHTTPExport(t *testing.T) {
	col := newCollector(t)
	tr, err := tracing.New(context.Background(), setenv(t,
		"OTEL_EXPORTER_OTLP_ENDPOINT="+col.URL,
		"OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20t0ken",
		"OTEL_SERVICE_NAME=exported",
		"OTEL_RESOURCE_ATTRIBUTES=k8s.namespace.name=prod",
	), tracing.Options{ServiceName: "app"})
	if err != nil {
		t.Fatal(err)
	}
	if !tr.Enabled() {
		t.Fatal("tracing is off with an endpoint set")
	}
	_, span := tr.Tracer().Start(context.Background(), "exported span", trace.WithAttributes(attribute.String("a", "b")))
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	spans := col.Named("exported span")
	if len(spans) != 1 {
		t.Fatalf("collector got %v", col.Spans())
	}
	s := spans[0]
	if s.Service != "exported" || s.Resource["k8s.namespace.name"] != "prod" || s.Attributes["a"] != "b" {
		t.Errorf("span %+v", s)
	}
	if h := col.Headers()[0]; h.Get("Authorization") != "Bearer t0ken" {
		t.Errorf("export headers %v", h)
	}
}

// The same over gRPC (gzip set: the export must still arrive), where only
// the endpoint's scheme, host and port count.
func TestOTLPGRPCExport(t *testing.T) {
	col := newGRPCCollector(t)
	tr, err := tracing.New(context.Background(), setenv(t,
		"OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="+col.GRPCEndpoint+"/ignored",
		"OTEL_EXPORTER_OTLP_HEADERS=x-api-key=k",
		"OTEL_EXPORTER_OTLP_COMPRESSION=gzip",
	), tracing.Options{ServiceName: "app"})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.Tracer().Start(context.Background(), "over grpc")
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if spans := col.Named("over grpc"); len(spans) != 1 || spans[0].Service != "app" {
		t.Fatalf("collector got %v", col.Spans())
	}
	if h := col.Headers()[0]; h.Get("X-Api-Key") != "k" {
		t.Errorf("export metadata %v", h)
	}
}

// Where OTLP/HTTP goes: /v1/traces under the general endpoint (a base path
// kept), the traces endpoint as it is (/ when it has no path) and winning.
func TestOTLPHTTPPaths(t *testing.T) {
	for _, tt := range []struct{ env, want string }{
		{"OTEL_EXPORTER_OTLP_ENDPOINT=%s", "/v1/traces"},
		{"OTEL_EXPORTER_OTLP_ENDPOINT=%s/otlp/", "/otlp/v1/traces"},
		{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=%s/custom", "/custom"},
		{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=%s", "/"},
	} {
		t.Run(tt.env, func(t *testing.T) {
			col := newCollector(t)
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1") // the traces variable wins
			env := setenv(t, strings.ReplaceAll(tt.env, "%s", col.URL))
			tr, err := tracing.New(context.Background(), env, tracing.Options{ServiceName: "app"})
			if err != nil {
				t.Fatal(err)
			}
			_, span := tr.Tracer().Start(context.Background(), "x")
			span.End()
			if err := tr.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			if p := col.Paths(); len(p) != 1 || p[0] != tt.want {
				t.Errorf("exported to %q, want %s", p, tt.want)
			}
		})
	}
}

// The traces variables win over the general ones: headers, compression.
func TestOTLPTracesVariablesWin(t *testing.T) {
	col := newCollector(t)
	tr, err := tracing.New(context.Background(), setenv(t,
		"OTEL_EXPORTER_OTLP_ENDPOINT="+col.URL,
		"OTEL_EXPORTER_OTLP_HEADERS=a=1", "OTEL_EXPORTER_OTLP_TRACES_HEADERS=api-key=s%3Dcret, x-team = blue",
		"OTEL_EXPORTER_OTLP_COMPRESSION=none", "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION=gzip",
	), tracing.Options{ServiceName: "app"})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.Tracer().Start(context.Background(), "x")
	span.End()
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	h := col.Headers()
	if len(h) != 1 || h[0].Get("Api-Key") != "s=cret" || h[0].Get("X-Team") != "blue" || h[0].Get("A") != "" ||
		h[0].Get("Content-Encoding") != "gzip" {
		t.Errorf("export headers %v", h)
	}
}

// Shutdown gives up at its context's deadline when the collector does not
// answer, rather than holding the process.
func TestShutdownIsBounded(t *testing.T) {
	tr, err := tracing.New(context.Background(), nil, tracing.Options{ServiceName: "app", Exporter: stuckExporter{}})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.Tracer().Start(context.Background(), "x")
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := tr.Shutdown(ctx); err == nil {
		t.Error("Shutdown returned nil with the export stuck")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Shutdown took %s", took)
	}
}

type stuckExporter struct{}

func (stuckExporter) ExportSpans(ctx context.Context, _ []sdktrace.ReadOnlySpan) error {
	<-ctx.Done()
	return ctx.Err()
}
func (stuckExporter) Shutdown(context.Context) error { return nil }

// The console exporter writes one JSON object a line, so that it can share
// stdout with the JSON log lines.
func TestConsoleExporter(t *testing.T) {
	var out bytes.Buffer
	tr, err := tracing.New(context.Background(), setenv(t, "OTEL_TRACES_EXPORTER=console"),
		tracing.Options{ServiceName: "app", Console: &out})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"one", "two"} {
		_, span := tr.Tracer().Start(context.Background(), name)
		span.End()
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	var names []string
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var s struct{ Name string }
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		names = append(names, s.Name)
	}
	if strings.Join(names, ",") != "one,two" {
		t.Errorf("console lines named %q", names)
	}
}

// An export that fails is logged through the app's logger, at warn.
func TestExportErrorsAreLogged(t *testing.T) {
	var logs bytes.Buffer
	tr, err := tracing.New(context.Background(), nil, tracing.Options{ServiceName: "app", Exporter: failingExporter{},
		Logger: zerolog.New(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tr.Tracer().Start(context.Background(), "x")
	span.End()
	// A flush returns the export's error; the batch processor's own
	// exports, every few seconds, report it to the global handler.
	if err := tr.ForceFlush(context.Background()); err == nil || !strings.Contains(err.Error(), "collector refused") {
		t.Errorf("ForceFlush: %v", err)
	}
	otel.Handle(errors.New("collector refused"))
	_ = tr.Shutdown(context.Background())
	if !strings.Contains(logs.String(), `"level":"warn"`) || !strings.Contains(logs.String(), "collector refused") {
		t.Errorf("logs: %s", logs.String())
	}
}

type failingExporter struct{}

func (failingExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error {
	return errors.New("collector refused")
}
func (failingExporter) Shutdown(context.Context) error { return nil }

func TestLog(t *testing.T) {
	var buf bytes.Buffer
	log := zerolog.New(&buf)
	off, _ := tracing.New(context.Background(), nil, tracing.Options{ServiceName: "app"})
	log.Info().Func(off.Log).Msg("")
	col := newCollector(t)
	on, _ := tracing.New(context.Background(), setenv(t, "OTEL_EXPORTER_OTLP_ENDPOINT="+col.URL), tracing.Options{ServiceName: "app"})
	defer func() { _ = on.Shutdown(context.Background()) }()
	log.Info().Func(on.Log).Msg("")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"tracing":false`) ||
		!strings.Contains(lines[1], `"tracing":true,"otel_service_name":"app","otel_traces_exporter":["otlp"]`) ||
		!strings.Contains(lines[1], `"otel_exporter_otlp_endpoint":"`+col.URL+`","otel_exporter_otlp_protocol":"http/protobuf"`) {
		t.Errorf("log lines:\n%s", buf.String())
	}
}
