package server

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskevents/taskevents/worker/internal/fault"
	"github.com/taskevents/taskevents/worker/internal/handler"
	"github.com/taskevents/taskevents/worker/internal/taskevent"
)

func TestEventStatuses(t *testing.T) {
	binary := http.Header{
		"Content-Type":   {"application/json"},
		"Ce-Specversion": {"1.0"},
		"Ce-Id":          {eventID},
		"Ce-Source":      {"task-api"},
		"Ce-Type":        {"task.created"},
		"Ce-Topic":       {"task-events"},
		"Ce-Pubsubname":  {"pubsub"},
	}
	tests := []struct {
		name       string
		header     http.Header
		body       string
		maxBytes   int64
		wantStatus string
		wantMsg    string
		wantReason string
		wantCalls  int
	}{
		{name: "daprd application/json", body: daprdEnvelope, wantStatus: "SUCCESS", wantMsg: MsgReceived, wantCalls: 1},
		{name: "text/plain JSON string data",
			body: envelope(t, `"data":`+taskJSON, `"data":"{\"event_type\":\"task.created\",\"task_id\":\"`+taskID+`\",\"title\":\"x\"}"`,
				`"datacontenttype":"application/json"`, `"datacontenttype":"text/plain"`),
			wantStatus: "SUCCESS", wantMsg: MsgReceived, wantCalls: 1},
		{name: "data_base64 octet-stream",
			body: `{"id":"` + eventID + `","specversion":"1.0","datacontenttype":"application/octet-stream","source":"Dapr","type":"com.dapr.event.sent","topic":"task-events","pubsubname":"pubsub","data_base64":"` +
				base64.StdEncoding.EncodeToString([]byte(taskJSON)) + `"}`,
			wantStatus: "SUCCESS", wantMsg: MsgReceived, wantCalls: 1},
		{name: "binary mode", header: binary, body: taskJSON, wantStatus: "SUCCESS", wantMsg: MsgReceived, wantCalls: 1},
		{name: "tracestate empty", body: envelope(t, `"tracestate":""`, `"tracestate":""`), wantStatus: "SUCCESS", wantMsg: MsgReceived, wantCalls: 1},
		{name: "time with offset", body: envelope(t, `"2026-11-27T16:00:00Z"`, `"2026-11-27T17:00:00+01:00"`), wantStatus: "SUCCESS", wantMsg: MsgReceived, wantCalls: 1},
		{name: "com.dapr.event.sent + data.event_type", body: envelope(t, `"type":"task.created"`, `"type":"com.dapr.event.sent"`), wantStatus: "SUCCESS", wantMsg: MsgReceived, wantCalls: 1},

		{name: "missing specversion", body: envelope(t, `"specversion":"1.0",`, ``), wantStatus: "DROP", wantMsg: MsgRejected, wantReason: "not a CloudEvent"},
		{name: "not JSON", body: `{"status":`, wantStatus: "DROP", wantMsg: MsgRejected, wantReason: "not valid JSON"},
		{name: "invalid extension name my_ext", body: envelope(t, `"topic":`, `"my_ext":"x","topic":`), wantStatus: "DROP", wantMsg: MsgRejected, wantReason: "not a CloudEvent"},
		{name: "empty id", body: envelope(t, `"id":"`+eventID+`"`, `"id":""`), wantStatus: "DROP", wantMsg: MsgRejected, wantReason: "invalid CloudEvent"},
		{name: "empty source", body: envelope(t, `"source":"task-api"`, `"source":""`), wantStatus: "DROP", wantMsg: MsgRejected, wantReason: "not a CloudEvent"},
		{name: "empty type", body: envelope(t, `"type":"task.created"`, `"type":""`), wantStatus: "DROP", wantMsg: MsgRejected, wantReason: "invalid CloudEvent"},
		{name: "oversized body", body: daprdEnvelope, maxBytes: 100, wantStatus: "DROP", wantMsg: MsgRejected, wantReason: "exceeds MAX_EVENT_BYTES (100 bytes)"},

		{name: "unknown type", body: envelope(t, `"type":"task.created"`, `"type":"task.archived"`), wantStatus: "DROP", wantMsg: MsgReceived, wantReason: `unknown event type "task.archived"`},
		{name: "com.dapr.event.sent without data.event_type", body: envelope(t, `"type":"task.created"`, `"type":"com.dapr.event.sent"`, `"event_type":"task.created",`, ``), wantStatus: "DROP", wantMsg: MsgReceived, wantReason: "unknown event type"},
		{name: "invalid task_id", body: envelope(t, taskID, "42"), wantStatus: "DROP", wantMsg: MsgReceived, wantReason: "not a UUID"},
		{name: "blank title", body: envelope(t, `"title":"Learn Dapr pub/sub"`, `"title":"   "`), wantStatus: "DROP", wantMsg: MsgReceived, wantReason: "title is blank"},
		{name: "undecodable data", body: envelope(t, `"data":`+taskJSON, `"data":"not json"`), wantStatus: "DROP", wantMsg: MsgReceived, wantReason: "not a task JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, rec := deliver(t, "/events/todo", tt.header, tt.body, tt.maxBytes)
			if got := status(t, rec); got != tt.wantStatus {
				t.Errorf("status = %q, want %q", got, tt.wantStatus)
			}
			if h.rec.count() != tt.wantCalls {
				t.Errorf("handler called %d times, want %d", h.rec.count(), tt.wantCalls)
			}
			line := h.onlyLine()
			if line["message"] != tt.wantMsg || line["outcome"] != tt.wantStatus {
				t.Errorf("log message %v outcome %v, want %q %q", line["message"], line["outcome"], tt.wantMsg, tt.wantStatus)
			}
			wantLevel := "info"
			if tt.wantStatus != "SUCCESS" {
				wantLevel = "warn"
			}
			if line["level"] != wantLevel {
				t.Errorf("level = %v, want %s", line["level"], wantLevel)
			}
			reason, _ := line["reason"].(string)
			if tt.wantReason == "" && reason != "" {
				t.Errorf("unexpected reason %q", reason)
			}
			if !strings.Contains(reason, tt.wantReason) {
				t.Errorf("reason %q does not contain %q", reason, tt.wantReason)
			}
		})
	}
}

func TestLogLineFields(t *testing.T) {
	t.Run("handled", func(t *testing.T) {
		h := newHarness(t, nil)
		status(t, h.deliver(daprdEnvelope))
		line := h.onlyLine()
		want := map[string]any{
			"level": "info", "message": "EVENT RECEIVED",
			"event_id": eventID, "source": "task-api", "type": "task.created", "topic": "task-events",
			"pubsubname": "pubsub", "traceparent": tp, "task_id": taskID, "title": "Learn Dapr pub/sub",
			"event_type": "task.created", "outcome": "SUCCESS", "duplicate": false,
		}
		for k, v := range want {
			if line[k] != v {
				t.Errorf("%s = %#v, want %#v", k, line[k], v)
			}
		}
		if d, ok := line["duration_ms"].(float64); !ok || d < 0 {
			t.Errorf("duration_ms = %#v, want a non-negative number", line["duration_ms"])
		}
		if _, ok := line["time"].(string); !ok {
			t.Errorf("time = %#v", line["time"])
		}
		if _, ok := line["reason"]; ok {
			t.Errorf("reason on a SUCCESS line: %v", line["reason"])
		}
	})
	t.Run("dropped data keeps ids", func(t *testing.T) {
		h := newHarness(t, nil)
		status(t, h.deliver(envelope(t, taskID, "nope")))
		line := h.onlyLine()
		if line["message"] != MsgReceived || line["level"] != "warn" || line["event_id"] != eventID ||
			line["task_id"] != "nope" || line["duplicate"] != false || line["outcome"] != "DROP" {
			t.Errorf("line = %v", line)
		}
	})
	t.Run("rejected envelope keeps known ids", func(t *testing.T) {
		h := newHarness(t, nil)
		status(t, h.deliver(envelope(t, `"specversion":"1.0",`, ``)))
		line := h.onlyLine()
		if line["message"] != MsgRejected || line["level"] != "warn" || line["outcome"] != "DROP" ||
			line["event_id"] != eventID || line["task_id"] != taskID || line["topic"] != "task-events" {
			t.Errorf("line = %v", line)
		}
		if _, ok := line["duplicate"]; ok {
			t.Errorf("rejected line has duplicate: %v", line)
		}
	})
	t.Run("rejected garbage has no ids", func(t *testing.T) {
		h := newHarness(t, nil)
		status(t, h.deliver("\x00garbage"))
		line := h.onlyLine()
		if line["message"] != MsgRejected || line["reason"] == "" {
			t.Errorf("line = %v", line)
		}
		if _, ok := line["event_id"]; ok {
			t.Errorf("event_id on garbage: %v", line)
		}
	})
	t.Run("huge title is cut in the log only", func(t *testing.T) {
		var got string
		h := newHarness(t, &recorder{do: func(_ context.Context, ev taskevent.Event) error { got = ev.Task.Title; return nil }})
		long := strings.Repeat("x", 10_000)
		status(t, h.deliver(envelope(t, `"title":"Learn Dapr pub/sub"`, `"title":"`+long+`"`)))
		if got != long {
			t.Errorf("handler got a title of %d bytes", len(got))
		}
		if title := h.onlyLine()["title"].(string); len(title) > maxLoggedTitle+len("…") {
			t.Errorf("logged title is %d bytes", len(title))
		}
	})
}

func TestDuplicateDelivery(t *testing.T) {
	h := newHarness(t, nil)
	for i := range 3 {
		if got := status(t, h.deliver(daprdEnvelope)); got != "SUCCESS" {
			t.Fatalf("delivery %d: %s", i+1, got)
		}
	}
	if h.rec.count() != 1 {
		t.Fatalf("handler called %d times, want 1", h.rec.count())
	}
	lines := h.withMsg(MsgReceived)
	if len(lines) != 3 {
		t.Fatalf("%d lines", len(lines))
	}
	for i, l := range lines {
		if want := i > 0; l["duplicate"] != want || l["outcome"] != "SUCCESS" || l["level"] != "info" {
			t.Errorf("line %d = %v, want duplicate=%v", i, l, want)
		}
	}
	if !strings.Contains(h.scrape(), "taskevents_worker_duplicates_total 2\n") {
		t.Error("duplicates_total is not 2")
	}

	// The key is scoped by topic and component: the same id elsewhere is new.
	status(t, h.deliver(envelope(t, `"topic":"task-events"`, `"topic":"other"`)))
	status(t, h.deliver(envelope(t, `"pubsubname":"pubsub"`, `"pubsubname":"kafka"`)))
	if h.rec.count() != 3 {
		t.Errorf("handler called %d times, want 3", h.rec.count())
	}
}

func TestConcurrentDuplicateInFlight(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	h := newHarness(t, &recorder{do: func(_ context.Context, _ taskevent.Event) error {
		once.Do(func() { close(entered) })
		<-release
		return nil
	}}, func(o *Deps) { o.HandlerTimeout = 300 * time.Millisecond })

	first := make(chan string, 1)
	go func() {
		rec := h.deliver(daprdEnvelope)
		first <- rec.Body.String()
	}()
	<-entered

	// A redelivery while the first attempt runs must neither run the
	// handler nor claim success.
	if got := status(t, h.deliver(daprdEnvelope)); got != "RETRY" {
		t.Fatalf("concurrent duplicate: %s, want RETRY", got)
	}
	close(release)
	if body := <-first; !strings.Contains(body, `"SUCCESS"`) {
		t.Fatalf("first delivery: %s", body)
	}
	if got := status(t, h.deliver(daprdEnvelope)); got != "SUCCESS" {
		t.Fatalf("later redelivery: %s", got)
	}
	if h.rec.count() != 1 {
		t.Errorf("handler called %d times, want 1", h.rec.count())
	}
	var inflight map[string]any
	for _, l := range h.withMsg(MsgReceived) {
		if l["outcome"] == "RETRY" {
			inflight = l
		}
	}
	if inflight == nil || inflight["duplicate"] != true || !strings.Contains(inflight["reason"].(string), "being handled") {
		t.Errorf("in-flight line = %v", inflight)
	}
}

// A redelivery that finds the event claimed waits for the claim to settle: when the first
// delivery finishes within HANDLER_TIMEOUT, the redelivery is answered as a duplicate instead
// of spending one of daprd's retries.
func TestInFlightDuplicateWaitsForTheFirst(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	h := newHarness(t, &recorder{do: func(_ context.Context, _ taskevent.Event) error {
		once.Do(func() { close(entered) })
		<-release
		return nil
	}})
	first := make(chan string, 1)
	go func() { first <- h.deliver(daprdEnvelope).Body.String() }()
	<-entered
	second := make(chan string, 1)
	go func() { second <- status(t, h.deliver(daprdEnvelope)) }()
	time.AfterFunc(200*time.Millisecond, func() { close(release) })
	if got := <-second; got != "SUCCESS" {
		t.Fatalf("redelivery while the first was in flight: %s, want SUCCESS (a duplicate)", got)
	}
	if body := <-first; !strings.Contains(body, `"SUCCESS"`) {
		t.Fatalf("first delivery: %s", body)
	}
	if h.rec.count() != 1 {
		t.Errorf("handler called %d times, want 1", h.rec.count())
	}
}

func TestConcurrentDuplicatesHandledOnce(t *testing.T) {
	h := newHarness(t, &recorder{do: func(context.Context, taskevent.Event) error {
		time.Sleep(time.Millisecond) // widen the window for overlap
		return nil
	}})
	const n = 32
	statuses := make(chan string, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { statuses <- h.deliver(daprdEnvelope).Body.String() })
	}
	wg.Wait()
	close(statuses)
	var success int
	for s := range statuses {
		switch {
		case strings.Contains(s, `"SUCCESS"`):
			success++
		case strings.Contains(s, `"RETRY"`):
		default:
			t.Errorf("unexpected reply %s", s)
		}
	}
	if h.rec.count() != 1 || success == 0 {
		t.Errorf("handler called %d times, %d SUCCESS; want 1 call", h.rec.count(), success)
	}
	if got := len(h.withMsg(MsgReceived)); got != n {
		t.Errorf("%d log lines for %d deliveries", got, n)
	}
}

func TestRetryReleasesClaim(t *testing.T) {
	fail := true
	h := newHarness(t, &recorder{do: func(context.Context, taskevent.Event) error {
		if fail {
			fail = false
			return errors.New("database unavailable")
		}
		return nil
	}})
	if got := status(t, h.deliver(daprdEnvelope)); got != "RETRY" {
		t.Fatalf("first: %s", got)
	}
	if got := status(t, h.deliver(daprdEnvelope)); got != "SUCCESS" {
		t.Fatalf("redelivery: %s", got)
	}
	if h.rec.count() != 2 {
		t.Errorf("handler called %d times, want 2", h.rec.count())
	}
	lines := h.withMsg(MsgReceived)
	if lines[0]["reason"] != "database unavailable" || lines[0]["level"] != "warn" || lines[1]["duplicate"] != false {
		t.Errorf("lines = %v", lines)
	}
}

func TestHandlerErrors(t *testing.T) {
	tests := []struct {
		name       string
		do         func(ctx context.Context, ev taskevent.Event) error
		timeout    time.Duration
		cancelReq  bool
		wantStatus string
		wantReason string
	}{
		{name: "permanent", do: func(context.Context, taskevent.Event) error {
			return handler.Permanent(errors.New("title violates policy"))
		}, wantStatus: "DROP", wantReason: "title violates policy"},
		{name: "transient", do: func(context.Context, taskevent.Event) error {
			return handler.Transient(errors.New("downstream 503"))
		}, wantStatus: "RETRY", wantReason: "downstream 503"},
		{name: "unclassified is transient", do: func(context.Context, taskevent.Event) error {
			return fmt.Errorf("wrapped: %w", errors.New("eof"))
		}, wantStatus: "RETRY", wantReason: "wrapped: eof"},
		{name: "handler timeout", timeout: 20 * time.Millisecond, do: func(ctx context.Context, _ taskevent.Event) error {
			<-ctx.Done()
			return ctx.Err()
		}, wantStatus: "RETRY", wantReason: "HANDLER_TIMEOUT (20ms)"},
		{name: "request canceled (shutdown or daprd hung up)", cancelReq: true, do: func(ctx context.Context, _ taskevent.Event) error {
			<-ctx.Done()
			return ctx.Err()
		}, wantStatus: "RETRY", wantReason: "canceled before the handler finished"},
		{name: "panic", do: func(context.Context, taskevent.Event) error {
			panic("nil map")
		}, wantStatus: "DROP", wantReason: "handler panicked: nil map"},
		{name: "success after deadline still counts", timeout: time.Millisecond, do: func(ctx context.Context, _ taskevent.Event) error {
			<-ctx.Done()
			return nil
		}, wantStatus: "SUCCESS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, &recorder{do: tt.do}, func(o *Deps) {
				if tt.timeout > 0 {
					o.HandlerTimeout = tt.timeout
				}
			})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancelReq {
				cancel()
			}
			rec := h.doCtx(ctx, http.MethodPost, "/events/todo", cloudEventHeader(), daprdEnvelope)
			if got := status(t, rec); got != tt.wantStatus {
				t.Fatalf("status = %s, want %s", got, tt.wantStatus)
			}
			line := h.onlyLine()
			reason, _ := line["reason"].(string)
			if !strings.Contains(reason, tt.wantReason) {
				t.Errorf("reason %q does not contain %q", reason, tt.wantReason)
			}
			// Only a success is remembered; anything else leaves the event
			// to be handled on redelivery.
			wantLen := 0
			if tt.wantStatus == "SUCCESS" {
				wantLen = 1
			}
			if h.store.Len() != wantLen {
				t.Errorf("store holds %d keys, want %d", h.store.Len(), wantLen)
			}
		})
	}
}

func TestFaultInjectionFirst(t *testing.T) {
	rec := &recorder{}
	h := newHarness(t, fault.Wrap(rec, fault.Config{RetryFirst: 2}))
	var got []string
	for range 4 {
		got = append(got, status(t, h.deliver(daprdEnvelope)))
	}
	if want := "RETRY,RETRY,SUCCESS,SUCCESS"; strings.Join(got, ",") != want {
		t.Fatalf("statuses = %v, want %s", got, want)
	}
	if rec.count() != 1 {
		t.Errorf("handler called %d times, want 1", rec.count())
	}
	lines := h.withMsg(MsgReceived)
	for i, l := range lines[:2] {
		if l["reason"] != "fault injection" || l["level"] != "warn" {
			t.Errorf("line %d = %v", i, l)
		}
	}
	if lines[2]["duplicate"] != false || lines[3]["duplicate"] != true {
		t.Errorf("duplicate flags: %v, %v", lines[2]["duplicate"], lines[3]["duplicate"])
	}
	// Another event starts its own count.
	if s := status(t, h.deliver(withID(t, "other-id"))); s != "RETRY" {
		t.Errorf("other event, first delivery: %s", s)
	}
}
