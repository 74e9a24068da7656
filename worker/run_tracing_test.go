package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/taskevents/taskevents/kit/kittest"
	"github.com/taskevents/taskevents/kit/logging"
	"github.com/taskevents/taskevents/kit/tracing/tracingtest"
)

// With tracing on (the console exporter: the OTLP ones are kit/tracing's
// tests), run exports a delivery's spans, under the worker's own service
// name and flushed at shutdown.
func TestRunTracing(t *testing.T) {
	// The SDK reads these from the process environment: none may leak in.
	t.Setenv("OTEL_SERVICE_NAME", "")
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "")
	t.Setenv("OTEL_TRACES_SAMPLER", "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &logging.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"APP_PORT=0", "LISTEN_HOST=127.0.0.1", "OPS_PORT=0", "DRAIN_DELAY=0s",
			"DEDUPE_STORE=memory", "OTEL_TRACES_EXPORTER=console"}, out)
	}()
	var base string
	kittest.Eventually(t, `the "listening" line`, func() bool {
		if l := logLines(t, out, "listening"); len(l) == 1 {
			base = "http://" + l[0]["addr"].(string)
			return true
		}
		return false
	})
	if l := logLines(t, out, "starting"); len(l) != 1 || l[0]["tracing"] != true || l[0]["otel_service_name"] != "taskevents-worker" {
		t.Errorf("starting line %v, want tracing on", l)
	}

	const daprdSpan = "00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01"
	envelope := `{"topic":"task-events","pubsubname":"pubsub","data":{"event_type":"task.created",` +
		`"task_id":"3f0c8a51-6b7e-4d2a-9c1e-2b5d7f9a0c11","title":"traced"},"id":"ev-1","specversion":"1.0",` +
		`"datacontenttype":"application/json","source":"task-api","type":"task.created",` +
		`"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}`
	req, _ := http.NewRequest(http.MethodPost, base+"/events/todo", strings.NewReader(envelope))
	req.Header.Set("Content-Type", "application/cloudevents+json")
	req.Header.Set("traceparent", daprdSpan)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	servers := tracingtest.Named(out.Bytes(), "POST /events/todo")
	if len(servers) != 1 || servers[0].Service() != "taskevents-worker" ||
		servers[0].SpanContext.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" || servers[0].Parent.SpanID != "1111111111111111" {
		t.Fatalf("server spans %+v", servers)
	}
	handle := tracingtest.Named(out.Bytes(), "handle task.created")
	if len(handle) != 1 || handle[0].Parent.SpanID != servers[0].SpanContext.SpanID {
		t.Errorf("handle spans %+v, want one under %s", handle, servers[0].SpanContext.SpanID)
	}
	if l := logLines(t, out, "EVENT RECEIVED"); len(l) != 1 || l[0]["trace_id"] != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("EVENT RECEIVED lines %v", l)
	}
}

func TestRunTracingConfigError(t *testing.T) {
	err := run(context.Background(), []string{"OTEL_TRACES_SAMPLER_ARG=2", "OTEL_TRACES_SAMPLER=traceidratio"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `config: OTEL_TRACES_SAMPLER_ARG has an invalid value "2"`) {
		t.Errorf("run = %v, want the config error", err)
	}
}
