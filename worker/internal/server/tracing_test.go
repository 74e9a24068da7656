package server

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskevents/taskevents/kit/tracing"
	"github.com/taskevents/taskevents/worker/internal/handler"
	"github.com/taskevents/taskevents/worker/internal/metrics"
	"github.com/taskevents/taskevents/worker/internal/taskevent"
)

// daprd's delivery span: the traceparent header of a single delivery. It is
// in the publisher's trace (the CloudEvent's traceparent, tp) but is a span
// of its own.
const (
	traceID        = "4bf92f3577b34da6a3ce929d0e0e4736"
	deliverySpanID = "1111111111111111"
	deliveryParent = "00-" + traceID + "-" + deliverySpanID + "-01"
)

// tracedHarness is a harness with tracing on, exporting to memory.
func tracedHarness(t *testing.T, h handler.Handler) (*harness, *tracing.Tracing, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tr, err := tracing.New(context.Background(), nil, tracing.Options{ServiceName: "taskevents-worker", Exporter: exp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	return newHarness(t, h, func(o *Deps) { o.Tracing = tr }), tr, exp
}

func flushed(t *testing.T, tr *tracing.Tracing, exp *tracetest.InMemoryExporter) tracetest.SpanStubs {
	t.Helper()
	if err := tr.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	return exp.GetSpans()
}

func spanAttrs(s tracetest.SpanStub) map[attribute.Key]string {
	m := map[attribute.Key]string{}
	for _, kv := range s.Attributes {
		m[kv.Key] = kv.Value.String()
	}
	return m
}

func named(spans tracetest.SpanStubs, name string) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range spans {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// childOf finds the span named name whose parent is parent.
func childOf(t *testing.T, spans tracetest.SpanStubs, name string, parent trace.SpanContext) (tracetest.SpanStub, bool) {
	t.Helper()
	for _, s := range named(spans, name) {
		if s.Parent.SpanID() == parent.SpanID() && s.SpanContext.TraceID() == parent.TraceID() {
			return s, true
		}
	}
	return tracetest.SpanStub{}, false
}

func TestTracingSingleDelivery(t *testing.T) {
	for _, tt := range []struct {
		name        string
		body        func(t *testing.T) string
		handle      func(context.Context, taskevent.Event) error
		twice       bool // deliver again: the second is a duplicate
		wantOutcome string
		wantHandle  bool
		wantFailed  bool
	}{
		{name: "handled", body: func(*testing.T) string { return daprdEnvelope },
			wantOutcome: metrics.OutcomeSuccess, wantHandle: true},
		{name: "handler fails: RETRY, both spans failed", body: func(*testing.T) string { return daprdEnvelope },
			handle:      func(context.Context, taskevent.Event) error { return errors.New("database down") },
			wantOutcome: metrics.OutcomeRetry, wantHandle: true, wantFailed: true},
		{name: "invalid event: DROP before the handler", body: func(t *testing.T) string {
			return envelope(t, `"title":"Learn Dapr pub/sub"`, `"title":""`)
		}, wantOutcome: metrics.OutcomeDrop, wantFailed: true},
		{name: "duplicate: SUCCESS without the handler", body: func(*testing.T) string { return daprdEnvelope }, twice: true,
			wantOutcome: metrics.OutcomeSuccess},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h, tr, exp := tracedHarness(t, &recorder{do: tt.handle})
			header := cloudEventHeader()
			header.Set("traceparent", deliveryParent)
			if tt.twice {
				h.do(http.MethodPost, "/events/todo", header, tt.body(t))
				exp.Reset()
				_ = tr.ForceFlush(context.Background())
				exp.Reset()
			}
			if got := status(t, h.do(http.MethodPost, "/events/todo", header, tt.body(t))); got != tt.wantOutcome {
				t.Fatalf("status %s, want %s", got, tt.wantOutcome)
			}
			spans := flushed(t, tr, exp)
			servers := named(spans, SpanEvents)
			if len(servers) != 1 {
				t.Fatalf("%d %q spans in %v", len(servers), SpanEvents, spans)
			}
			server := servers[0]
			a := spanAttrs(server)
			if server.SpanKind != trace.SpanKindServer || server.Parent.TraceID().String() != traceID ||
				server.Parent.SpanID().String() != deliverySpanID || !server.Parent.IsRemote() {
				t.Errorf("server span: kind %v, parent %v; want a server span under daprd's %s", server.SpanKind, server.Parent, deliveryParent)
			}
			if a["dapr.delivery.outcome"] != tt.wantOutcome || a["http.route"] != "/events/todo" ||
				a["http.response.status_code"] != "200" || a["messaging.destination.name"] != "task-events" {
				t.Errorf("server span attributes %v", a)
			}
			if tt.wantOutcome == metrics.OutcomeSuccess && (a["messaging.message.id"] != eventID || a["task.id"] != taskID) {
				t.Errorf("server span attributes %v, want event id %s and task id %s", a, eventID, taskID)
			}
			if (server.Status.Code == codes.Error) != tt.wantFailed {
				t.Errorf("server span status %v, want failed %v", server.Status, tt.wantFailed)
			}

			handle, ok := childOf(t, spans, "handle task.created", server.SpanContext)
			if ok != tt.wantHandle {
				t.Fatalf("handle span under the server span: %v, want %v (spans %v)", ok, tt.wantHandle, spans)
			}
			if ok && (handle.Status.Code == codes.Error) != tt.wantFailed {
				t.Errorf("handle span status %v, want failed %v", handle.Status, tt.wantFailed)
			}

			// The log line keeps the CloudEvent's traceparent and names the trace.
			lines := append(h.withMsg(MsgReceived), h.withMsg(MsgRejected)...)
			last := lines[len(lines)-1]
			if last["trace_id"] != traceID {
				t.Errorf("log line trace_id %v, want %s: %v", last["trace_id"], traceID, last)
			}
			if tt.wantOutcome != metrics.OutcomeDrop && last["traceparent"] != tp {
				t.Errorf("log line traceparent %v, want the CloudEvent's %s", last["traceparent"], tp)
			}
		})
	}
}

// In a bulk delivery each entry continues its own CloudEvent's trace, links
// to the bulk request's span, and gets its own handle span; an entry without
// a traceparent hangs under the request's span.
func TestTracingBulkDelivery(t *testing.T) {
	h, tr, exp := tracedHarness(t, nil)
	parents := []string{
		"00-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a1a1a1a1a1a1a1a1-01",
		"00-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-b1b1b1b1b1b1b1b1-01",
	}
	withParent := func(n int, parent string) string {
		return strings.Replace(task(t, n, "bulk "+strconv.Itoa(n)), `"traceparent":"`+tp+`"`, `"traceparent":"`+parent+`"`, 1)
	}
	noParent := strings.Replace(task(t, 3, "no parent"), `,"traceparent":"`+tp+`"`, "", 1)
	if strings.Contains(noParent, "traceparent") {
		t.Fatalf("fixture still has a traceparent: %s", noParent)
	}
	body := batchBody(t,
		entry{id: "e1", event: withParent(1, parents[0])},
		entry{id: "e2", event: withParent(2, parents[1])},
		entry{id: "e3", event: noParent},
		entry{id: "e4", event: `"not an object"`})
	rec := h.do(http.MethodPost, "/events/todo", http.Header{"Content-Type": {"application/json"}, "Traceparent": {deliveryParent}}, body)
	if rec.Code != http.StatusOK {
		t.Fatalf("batch answered %d", rec.Code)
	}
	spans := flushed(t, tr, exp)

	batches := named(spans, spanBatch)
	if len(batches) != 1 {
		t.Fatalf("%d %q spans", len(batches), spanBatch)
	}
	batch := batches[0]
	if batch.Parent.SpanID().String() != deliverySpanID || spanAttrs(batch)["messaging.batch.message_count"] != "4" {
		t.Errorf("batch span: parent %v, attributes %v", batch.Parent, spanAttrs(batch))
	}
	entries := named(spans, SpanEvents)
	if len(entries) != 4 {
		t.Fatalf("%d entry spans, want 4: %v", len(entries), spans)
	}
	byEntry := map[string]tracetest.SpanStub{}
	for _, s := range entries {
		byEntry[spanAttrs(s)["dapr.bulk.entry_id"]] = s
		if len(s.Links) != 1 || s.Links[0].SpanContext.SpanID() != batch.SpanContext.SpanID() {
			t.Errorf("entry span %v: links %v, want the batch span", spanAttrs(s), s.Links)
		}
		if s.SpanKind != trace.SpanKindServer {
			t.Errorf("entry span kind %v", s.SpanKind)
		}
	}
	for i, id := range []string{"e1", "e2"} {
		s := byEntry[id]
		want := parents[i]
		if got := "00-" + s.Parent.TraceID().String() + "-" + s.Parent.SpanID().String() + "-01"; got != want {
			t.Errorf("entry %s continues %s, want its CloudEvent's %s", id, got, want)
		}
		if _, ok := childOf(t, spans, "handle task.created", s.SpanContext); !ok {
			t.Errorf("entry %s has no handle span under it", id)
		}
	}
	if s := byEntry["e3"]; s.Parent.SpanID() != batch.SpanContext.SpanID() {
		t.Errorf("entry without a traceparent: parent %v, want the batch span", s.Parent)
	}
	if s := byEntry["e4"]; s.Status.Code != codes.Error || spanAttrs(s)["dapr.delivery.outcome"] != metrics.OutcomeDrop {
		t.Errorf("malformed entry: status %v, attributes %v", s.Status, spanAttrs(s))
	}

	// Each entry's log line names its own trace.
	for _, l := range h.withMsg(MsgReceived) {
		s := byEntry[l["entry_id"].(string)]
		if l["trace_id"] != s.SpanContext.TraceID().String() {
			t.Errorf("entry %v logged trace_id %v, want %s", l["entry_id"], l["trace_id"], s.SpanContext.TraceID())
		}
	}
}

func TestTracingDeadLetter(t *testing.T) {
	h, tr, exp := tracedHarness(t, nil)
	header := cloudEventHeader()
	header.Set("traceparent", deliveryParent)
	if got := status(t, h.do(http.MethodPost, "/events/deadletter", header, daprdEnvelope)); got != metrics.OutcomeSuccess {
		t.Fatalf("status %s", got)
	}
	spans := named(flushed(t, tr, exp), "POST /events/deadletter")
	if len(spans) != 1 || spans[0].Parent.SpanID().String() != deliverySpanID || spans[0].SpanKind != trace.SpanKindServer ||
		spanAttrs(spans[0])["messaging.message.id"] != eventID {
		t.Fatalf("dead-letter spans %v", spans)
	}
	if l := h.withMsg(MsgDeadLetter); len(l) != 1 || l[0]["trace_id"] != traceID {
		t.Errorf("dead-letter log lines %v", l)
	}
}

// Off, there is no span and no trace_id, and the traceparent is still logged.
func TestTracingOff(t *testing.T) {
	off, err := tracing.New(context.Background(), nil, tracing.Options{ServiceName: "taskevents-worker"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range []*tracing.Tracing{nil, off} {
		h := newHarness(t, nil, func(o *Deps) { o.Tracing = tr })
		header := cloudEventHeader()
		header.Set("traceparent", deliveryParent)
		if got := status(t, h.do(http.MethodPost, "/events/todo", header, daprdEnvelope)); got != metrics.OutcomeSuccess {
			t.Fatalf("status %s", got)
		}
		l := h.onlyLine()
		if _, ok := l["trace_id"]; ok || l["traceparent"] != tp {
			t.Errorf("tracing off: log line %v", l)
		}
	}
}

// BenchmarkHandleEventTracing is BenchmarkHandleEvent with daprd's
// traceparent header, tracing off and on (the real SDK, a batch processor,
// an exporter that drops the spans).
func BenchmarkHandleEventTracing(b *testing.B) {
	for _, mode := range []string{"off", "on"} {
		b.Run(mode, func(b *testing.B) {
			srv := benchServer(b, mode == "on")
			prefix, suffix, ok := bytes.Cut([]byte(daprdEnvelope), []byte(eventID))
			if !ok {
				b.Fatal("envelope has no id")
			}
			body := make([]byte, 0, len(daprdEnvelope)+20)
			b.ReportAllocs()
			var i int
			for b.Loop() {
				i++
				body = append(strconv.AppendInt(append(body[:0], prefix...), int64(i), 10), suffix...)
				req := httptest.NewRequest(http.MethodPost, "/events/todo", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/cloudevents+json")
				req.Header.Set("Traceparent", deliveryParent)
				rec := httptest.NewRecorder()
				srv.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK || !bytes.Contains(rec.Body.Bytes(), []byte("SUCCESS")) {
					b.Fatalf("reply %d %s", rec.Code, rec.Body)
				}
			}
		})
	}
}
