package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/taskevents/taskevents/kit/sidecar/sidecartest"
	"github.com/taskevents/taskevents/kit/tracing/tracingtest"
)

const (
	callerTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerParent = "00-" + callerTrace + "-00f067aa0ba902b7-01"
)

// traceparentOf is the W3C traceparent of an exported span.
func traceparentOf(s tracingtest.Span) string {
	return "00-" + s.SpanContext.TraceID + "-" + s.SpanContext.SpanID + "-01"
}

func postTraced(t *testing.T, url, traceparent string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+"/tasks", strings.NewReader(`{"title":"traced"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", traceparent)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /tasks = %d", resp.StatusCode)
	}
}

// With tracing on (the console exporter: the OTLP ones are kit/tracing's
// tests), run exports the request's spans (flushed at shutdown), and what
// reaches daprd is the publish span's context: the traceparent header of a
// single publish, each entry's cloudevent.traceparent of a bulk one.
func TestRunTracing(t *testing.T) {
	// The SDK reads these from the process environment: none may leak in.
	t.Setenv("OTEL_SERVICE_NAME", "")
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "")
	t.Setenv("OTEL_TRACES_SAMPLER", "")
	fake := sidecartest.New(t)
	a := startRun(t, fake, "IDEMPOTENCY_STORE=memory", "OTEL_TRACES_EXPORTER=console")

	postTraced(t, a.url, callerParent)
	const n = 20
	statuses := burst(t, a, fake, n) // coalesced: bulk publishes, each request its own trace
	for i, s := range statuses {
		if s != http.StatusAccepted {
			t.Fatalf("burst request %d: %d", i, s)
		}
	}
	a.cancel()
	if err := a.wait(t); err != nil {
		t.Fatal(err)
	}

	out := a.stdout.Bytes()
	publishSpans := map[string]tracingtest.Span{} // by traceparent
	for _, s := range tracingtest.Named(out, "publish task-events") {
		if s.Service() != "taskevents-publisher" || s.SpanKind != trace.SpanKindProducer {
			t.Errorf("publish span %+v", s)
		}
		publishSpans[traceparentOf(s)] = s
	}
	servers := tracingtest.Named(out, "POST /tasks")
	if len(servers) != n+1 || len(publishSpans) != n+1 {
		t.Fatalf("%d server and %d publish spans exported, want %d of each", len(servers), len(publishSpans), n+1)
	}

	// The single publish: its header is the publish span, in the caller's trace.
	singles := fake.Publishes()
	if len(singles) == 0 {
		t.Fatal("no single publish")
	}
	first := singles[0].Header.Get("traceparent")
	if s, ok := publishSpans[first]; !ok || s.SpanContext.TraceID != callerTrace {
		t.Errorf("the single publish carried traceparent %q, not a publish span in the caller's trace", first)
	}
	// The bulk entries: each its own publish span's context.
	seen := map[string]bool{first: true}
	bulkEntries := 0
	for _, b := range fake.BulkPublishes() {
		if b.Header.Get("traceparent") != "" {
			t.Errorf("a bulk publish has a traceparent header %q; each entry carries its own", b.Header.Get("traceparent"))
		}
		for _, e := range b.Entries {
			bulkEntries++
			tp := e.Metadata["cloudevent.traceparent"]
			if _, ok := publishSpans[tp]; !ok || seen[tp] {
				t.Errorf("bulk entry %s: cloudevent.traceparent %q is not a publish span of its own", e.EntryID, tp)
			}
			seen[tp] = true
		}
	}
	for _, s := range singles[1:] {
		tp := s.Header.Get("traceparent")
		if _, ok := publishSpans[tp]; !ok || seen[tp] {
			t.Errorf("single publish: traceparent %q is not a publish span of its own", tp)
		}
		seen[tp] = true
	}
	if bulkEntries == 0 {
		t.Error("the burst made no bulk publish")
	}

	// Each "task event published" line names its trace.
	traced := 0
	sc := bufio.NewScanner(strings.NewReader(a.stdout.String()))
	for sc.Scan() {
		var l struct {
			Message, Traceparent string
			TraceID              string `json:"trace_id"`
		}
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Message == "task event published" {
			if l.TraceID == "" || !strings.Contains(l.Traceparent, l.TraceID) {
				t.Errorf("log line %s: trace_id does not match traceparent", sc.Text())
			}
			traced++
		}
	}
	if traced != n+1 {
		t.Errorf("%d published lines, want %d", traced, n+1)
	}
}

func TestRunTracingConfigError(t *testing.T) {
	err := run(t.Context(), []string{"APP_PORT=0", "OTEL_EXPORTER_OTLP_ENDPOINT=collector:4318"}, &strings.Builder{})
	if err == nil || !strings.Contains(err.Error(), `config: OTEL_EXPORTER_OTLP_ENDPOINT has an invalid value "collector:4318"`) {
		t.Errorf("run = %v, want the config error", err)
	}
}
