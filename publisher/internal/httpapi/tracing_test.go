package httpapi_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskevents/taskevents/kit/sidecar"
	"github.com/taskevents/taskevents/kit/tracing"
	"github.com/taskevents/taskevents/publisher/internal/httpapi"
	"github.com/taskevents/taskevents/publisher/internal/publish"
)

const (
	callerTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpan   = "00f067aa0ba902b7"
	callerParent = "00-" + callerTrace + "-" + callerSpan + "-01"
)

// tracePublisher records the trace context each publish was given.
type tracePublisher struct {
	mu     sync.Mutex
	traces []publish.TraceContext
	err    error
}

func (p *tracePublisher) Publish(_ context.Context, _ publish.TaskCreated, tc publish.TraceContext) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.traces = append(p.traces, tc)
	return p.err
}

func (p *tracePublisher) last(t *testing.T) publish.TraceContext {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.traces) != 1 {
		t.Fatalf("%d publishes, want 1", len(p.traces))
	}
	return p.traces[0]
}

func post(h http.Handler, header http.Header, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/tasks", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func attrs(s tracetest.SpanStub) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes {
		m[kv.Key] = kv.Value
	}
	return m
}

func spanNamed(t *testing.T, spans tracetest.SpanStubs, name string) (tracetest.SpanStub, bool) {
	t.Helper()
	var found []tracetest.SpanStub
	for _, s := range spans {
		if s.Name == name {
			found = append(found, s)
		}
	}
	if len(found) > 1 {
		t.Fatalf("%d spans named %q", len(found), name)
	}
	if len(found) == 0 {
		return tracetest.SpanStub{}, false
	}
	return found[0], true
}

func TestTracingSpans(t *testing.T) {
	for _, tt := range []struct {
		name        string
		header      http.Header
		body        string
		publishErr  error
		wantStatus  int
		wantPublish bool
		wantFailed  bool // both spans marked failed
	}{
		{name: "continues the caller's trace",
			header: http.Header{"Traceparent": {callerParent}, "Tracestate": {"vendor=opaque"}},
			body:   `{"title":"traced"}`, wantStatus: 202, wantPublish: true},
		{name: "starts a trace without a traceparent",
			body: `{"title":"traced"}`, wantStatus: 202, wantPublish: true},
		{name: "starts a trace for an invalid traceparent",
			header: http.Header{"Traceparent": {"00-zz-yy-01"}},
			body:   `{"title":"traced"}`, wantStatus: 202, wantPublish: true},
		{name: "sidecar unavailable: 503, both spans failed",
			header:     http.Header{"Traceparent": {callerParent}},
			body:       `{"title":"traced"}`,
			publishErr: &sidecar.UnavailableError{Attempts: 3, Err: errors.New("connection refused")},
			wantStatus: 503, wantPublish: true, wantFailed: true},
		{name: "sidecar rejected: 502, both spans failed",
			header:     http.Header{"Traceparent": {callerParent}},
			body:       `{"title":"traced"}`,
			publishErr: &sidecar.ConfigError{Status: 404, Code: sidecar.CodeNotFound, Message: "pubsub pubsub is not found"},
			wantStatus: 502, wantPublish: true, wantFailed: true},
		{name: "invalid task: 422, no publish span, not a server error",
			header: http.Header{"Traceparent": {callerParent}},
			body:   `{"title":""}`, wantStatus: 422},
	} {
		t.Run(tt.name, func(t *testing.T) {
			exp := tracetest.NewInMemoryExporter()
			tr, err := tracing.New(context.Background(), nil, tracing.Options{ServiceName: "taskevents-publisher", Exporter: exp})
			if err != nil {
				t.Fatal(err)
			}
			pub := &tracePublisher{err: tt.publishErr}
			h := httpapi.New(httpapi.Deps{Publisher: pub, Logger: zerolog.Nop(), MaxTitleLength: 200,
				PubSubName: "pubsub", Topic: "task-events", Tracing: tr, NewID: func() string { return "task-1" }})
			rec := post(h, tt.header, tt.body)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d %s, want %d", rec.Code, rec.Body, tt.wantStatus)
			}
			if err := tr.ForceFlush(context.Background()); err != nil {
				t.Fatal(err)
			}
			spans := exp.GetSpans()

			server, ok := spanNamed(t, spans, httpapi.SpanCreateTask)
			if !ok {
				t.Fatalf("no %q span in %v", httpapi.SpanCreateTask, spans)
			}
			a := attrs(server)
			if server.SpanKind != trace.SpanKindServer || a["http.request.method"].AsString() != "POST" ||
				a["http.route"].AsString() != "/tasks" || a["http.response.status_code"].AsInt64() != int64(tt.wantStatus) {
				t.Errorf("server span: kind %v, attributes %v", server.SpanKind, a)
			}
			if (server.Status.Code == codes.Error) != tt.wantFailed {
				t.Errorf("server span status %v, want failed %v", server.Status, tt.wantFailed)
			}
			if tt.header.Get("Traceparent") == callerParent {
				if server.Parent.TraceID().String() != callerTrace || server.Parent.SpanID().String() != callerSpan ||
					!server.Parent.IsRemote() {
					t.Errorf("server span's parent %v, want the caller's %s", server.Parent, callerParent)
				}
			} else if server.Parent.IsValid() {
				t.Errorf("server span has parent %v, want a new trace", server.Parent)
			}

			publish, ok := spanNamed(t, spans, "publish task-events")
			if ok != tt.wantPublish {
				t.Fatalf("publish span found %v, want %v", ok, tt.wantPublish)
			}
			if !ok {
				return
			}
			a = attrs(publish)
			if publish.SpanKind != trace.SpanKindProducer || publish.Parent.SpanID() != server.SpanContext.SpanID() ||
				publish.SpanContext.TraceID() != server.SpanContext.TraceID() {
				t.Errorf("publish span: kind %v, parent %v, want a producer under %v", publish.SpanKind, publish.Parent, server.SpanContext)
			}
			if a["messaging.destination.name"].AsString() != "task-events" || a["messaging.message.id"].AsString() != "task-1" ||
				attrs(server)["task.id"].AsString() != "task-1" {
				t.Errorf("publish span attributes %v", a)
			}
			if (publish.Status.Code == codes.Error) != tt.wantFailed {
				t.Errorf("publish span status %v, want failed %v", publish.Status, tt.wantFailed)
			}

			// What goes to daprd is the publish span's own context.
			got := pub.last(t)
			want := "00-" + publish.SpanContext.TraceID().String() + "-" + publish.SpanContext.SpanID().String() + "-01"
			if got.TraceParent != want || got.TraceState != tt.header.Get("Tracestate") {
				t.Errorf("traceparent to daprd %q %q, want %q %q", got.TraceParent, got.TraceState, want, tt.header.Get("Tracestate"))
			}
		})
	}
}

// With tracing off the headers reach the publisher exactly as they came,
// invalid ones included: nothing parses them.
func TestTracingOffPassesTheTraceContextThrough(t *testing.T) {
	off, err := tracing.New(context.Background(), nil, tracing.Options{ServiceName: "taskevents-publisher"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range []*tracing.Tracing{nil, off} {
		for _, h := range []http.Header{
			{"Traceparent": {callerParent}, "Tracestate": {"vendor=opaque"}},
			{"Traceparent": {"not a traceparent"}},
			{},
		} {
			pub := &tracePublisher{}
			handler := httpapi.New(httpapi.Deps{Publisher: pub, Logger: zerolog.Nop(), MaxTitleLength: 200, Tracing: tr})
			if rec := post(handler, h, `{"title":"untraced"}`); rec.Code != 202 {
				t.Fatalf("status %d", rec.Code)
			}
			got := pub.last(t)
			if got.TraceParent != h.Get("Traceparent") || got.TraceState != h.Get("Tracestate") {
				t.Errorf("tracing %v: daprd gets %+v, want the request's %v", tr.Enabled(), got, h)
			}
		}
	}
}

// benchTracing is tracing off; on as in production, the real SDK and batch
// processor with an exporter that drops what it gets; or otlp, the real
// OTLP/HTTP exporter sending to a local server that answers 200 unread.
func benchTracing(b *testing.B, mode string) *tracing.Tracing {
	b.Helper()
	o := tracing.Options{ServiceName: "taskevents-publisher"}
	var env []string
	switch mode {
	case "on":
		o.Exporter = tracetest.NewNoopExporter()
	case "otlp":
		sink := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
		}))
		b.Cleanup(sink.Close)
		env = []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + sink.URL}
		b.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", sink.URL) // where the exporter reads it
	}
	tr, err := tracing.New(context.Background(), env, o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	return tr
}

// BenchmarkCreateTaskTracing is BenchmarkCreateTask with a traceparent, with
// tracing off, on, and on with the spans exported over OTLP/HTTP.
func BenchmarkCreateTaskTracing(b *testing.B) {
	for _, mode := range []string{"off", "on", "otlp"} {
		b.Run(mode, func(b *testing.B) {
			h := httpapi.New(httpapi.Deps{
				Publisher:      &fakePublisher{},
				Logger:         zerolog.Nop(),
				MaxTitleLength: 200,
				Topic:          "task-events",
				Tracing:        benchTracing(b, mode),
			})
			body := []byte(`{"title":"Benchmark the publisher"}`)
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/tasks", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Traceparent", callerParent)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusAccepted {
					b.Fatalf("status = %d: %s", rec.Code, rec.Body)
				}
			}
		})
	}
}
