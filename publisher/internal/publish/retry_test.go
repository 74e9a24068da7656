package publish_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/taskevents/taskevents/kit/logging"
	"github.com/taskevents/taskevents/kit/sidecar"
	"github.com/taskevents/taskevents/kit/sidecar/sidecartest"
	"github.com/taskevents/taskevents/publisher/internal/publish"
)

const (
	taskID      = "3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b"
	traceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
)

// noWait retries immediately.
func noWait(int) time.Duration { return 0 }

// waitsUntil retries immediately for n-1 retries, then asks for a wait that
// crosses any deadline, so exactly n attempts are made.
func waitsUntil(n int) func(int) time.Duration {
	return func(attempt int) time.Duration {
		if attempt >= n {
			return time.Hour
		}
		return 0
	}
}

// testOptions are the publisher's options and the sidecar client's token.
type testOptions struct {
	publish.Options
	APIToken string
}

// newClient returns a publisher that publishes every event alone, at once,
// through a sidecar client: the path of PUBLISH_COALESCE=false, and of a
// lone request.
func newClient(baseURL string, mod func(*testOptions)) (*publish.Publisher, *logging.Buffer) {
	logs := &logging.Buffer{}
	o := testOptions{Options: publish.Options{
		PubSubName:     "pubsub",
		Topic:          "task-events",
		PublishTimeout: 2 * time.Second,
		Backoff:        noWait,
		Logger:         zerolog.New(logs),
	}}
	if mod != nil {
		mod(&o)
	}
	client := sidecar.New(sidecar.Options{BaseURL: baseURL, APIToken: o.APIToken})
	return publish.New(client.Topic(o.PubSubName, o.Topic), o.Options), logs
}

func TestPublishRequest(t *testing.T) {
	tests := []struct {
		name       string
		token      string
		trace      publish.TraceContext
		title      string
		topic      string
		wantPath   string
		wantBody   string
		wantTraces [2]string
	}{
		{
			name:     "no token no trace",
			title:    "Buy milk",
			wantPath: "/v1.0/publish/pubsub/task-events",
			wantBody: `{"event_type":"task.created","task_id":"` + taskID + `","title":"Buy milk"}`,
		},
		{
			name:       "token and trace context",
			token:      "s3cr3t",
			trace:      publish.TraceContext{TraceParent: traceParent, TraceState: "congo=t61rcWkgMzE"},
			title:      "Fish & <chips>",
			wantPath:   "/v1.0/publish/pubsub/task-events",
			wantBody:   `{"event_type":"task.created","task_id":"` + taskID + `","title":"Fish & <chips>"}`,
			wantTraces: [2]string{traceParent, "congo=t61rcWkgMzE"},
		},
		{
			name:     "topic with slash and space is escaped per segment",
			title:    "x",
			topic:    "orders/eu west",
			wantPath: "/v1.0/publish/pubsub/orders/eu%20west",
			wantBody: `{"event_type":"task.created","task_id":"` + taskID + `","title":"x"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := sidecartest.New(t)
			fake.Token = tt.token
			c, _ := newClient(fake.URL, func(o *testOptions) {
				o.APIToken = tt.token
				if tt.topic != "" {
					o.Topic = tt.topic
				}
			})
			if err := c.Publish(context.Background(), publish.NewTaskCreated(taskID, tt.title), tt.trace); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			got := fake.Publishes()
			if len(got) != 1 {
				t.Fatalf("publish calls = %d, want 1", len(got))
			}
			req := got[0]
			wantURI := tt.wantPath + "?metadata.cloudevent.id=" + taskID +
				"&metadata.cloudevent.type=task.created&metadata.partitionKey=" + taskID
			if req.Method != http.MethodPost || req.RequestURI != wantURI {
				t.Errorf("request = %s %s\nwant      POST %s", req.Method, req.RequestURI, wantURI)
			}
			if ct := req.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
			if tok := req.Header.Values("dapr-api-token"); tt.token == "" && len(tok) != 0 || tt.token != "" && (len(tok) != 1 || tok[0] != tt.token) {
				t.Errorf("dapr-api-token = %q, want %q (absent when empty)", tok, tt.token)
			}
			if tp, ts := req.Header.Get("traceparent"), req.Header.Get("tracestate"); tp != tt.wantTraces[0] || ts != tt.wantTraces[1] {
				t.Errorf("traceparent, tracestate = %q, %q; want %q, %q", tp, ts, tt.wantTraces[0], tt.wantTraces[1])
			}
			if string(req.Body) != tt.wantBody {
				t.Errorf("body = %s\nwant   %s", req.Body, tt.wantBody)
			}
		})
	}
}

func TestPublishOutcomes(t *testing.T) {
	huge := sidecartest.Response{Status: 502, Body: strings.Repeat("x", 1<<20), ContentType: "text/plain"}
	tests := []struct {
		name         string
		script       []sidecartest.Response
		backoff      func(int) time.Duration
		wantAttempts int
		wantErr      string // "", "unavailable" or "config"
		wantStatus   int
		wantCode     string
		wantMessage  string
	}{
		{name: "204 is success", script: []sidecartest.Response{sidecartest.Published}, wantAttempts: 1},
		{name: "200 is not success", script: []sidecartest.Response{{Status: 200}},
			wantAttempts: 1, wantErr: "config", wantStatus: 200, wantMessage: "unexpected answer from the sidecar"},
		{name: "500 publish message then 204 is retried",
			script:       []sidecartest.Response{sidecartest.PublishFailed, sidecartest.PublishFailed, sidecartest.Published},
			wantAttempts: 3},
		{name: "500 publish message until the deadline is unavailable",
			script: []sidecartest.Response{sidecartest.PublishFailed}, backoff: waitsUntil(4),
			wantAttempts: 4, wantErr: "unavailable", wantStatus: 500, wantCode: sidecar.CodePublishMessage},
		{name: "500 with another code is not retried",
			script:       []sidecartest.Response{{Status: 500, Body: `{"errorCode":"ERR_PUBSUB_CLOUD_EVENTS_SER","message":"bad"}`}},
			wantAttempts: 1, wantErr: "config", wantStatus: 500, wantCode: "ERR_PUBSUB_CLOUD_EVENTS_SER", wantMessage: "bad"},
		{name: "404 not found is not retried", script: []sidecartest.Response{sidecartest.NotFound},
			wantAttempts: 1, wantErr: "config", wantStatus: 404, wantCode: sidecar.CodeNotFound, wantMessage: "pubsub pubsub is not found"},
		{name: "403 forbidden is not retried", script: []sidecartest.Response{sidecartest.Forbidden},
			wantAttempts: 1, wantErr: "config", wantStatus: 403, wantCode: sidecar.CodeForbidden},
		{name: "401 plain text is not retried", script: []sidecartest.Response{sidecartest.Unauthorized},
			wantAttempts: 1, wantErr: "config", wantStatus: 401, wantMessage: "invalid api token"},
		{name: "400 metadata is not retried", script: []sidecartest.Response{sidecartest.BadMetadata},
			wantAttempts: 1, wantErr: "config", wantStatus: 400, wantCode: "ERR_PUBSUB_REQUEST_METADATA"},
		{name: "huge unexpected body is read only in part", script: []sidecartest.Response{huge},
			wantAttempts: 1, wantErr: "config", wantStatus: 502, wantMessage: strings.Repeat("x", 4096)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := sidecartest.New(t)
			fake.Script(tt.script...)
			c, _ := newClient(fake.URL, func(o *testOptions) {
				if tt.backoff != nil {
					o.Backoff = tt.backoff
				}
			})
			start := time.Now()
			err := c.Publish(context.Background(), publish.NewTaskCreated(taskID, "x"), publish.TraceContext{})
			// No case waits: a backoff that would cross the deadline ends the
			// retries at once instead of sleeping until the 2s deadline.
			if d := time.Since(start); d > time.Second {
				t.Errorf("Publish took %s, want no waiting", d)
			}

			got := fake.Publishes()
			if len(got) != tt.wantAttempts {
				t.Errorf("publish calls = %d, want %d", len(got), tt.wantAttempts)
			}
			for i, r := range got {
				if id := r.Query.Get("metadata.cloudevent.id"); id != taskID {
					t.Errorf("attempt %d cloudevent.id = %q, want %q", i+1, id, taskID)
				}
			}
			var ue *sidecar.UnavailableError
			var ce *sidecar.ConfigError
			switch tt.wantErr {
			case "":
				if err != nil {
					t.Fatalf("Publish: %v", err)
				}
			case "unavailable":
				if !errors.As(err, &ue) || !errors.Is(err, sidecar.ErrUnavailable) {
					t.Fatalf("err = %v (%T), want *UnavailableError", err, err)
				}
				if ue.Attempts != tt.wantAttempts || ue.Status != tt.wantStatus || ue.Code != tt.wantCode {
					t.Errorf("UnavailableError = %+v, want attempts %d status %d code %q", ue, tt.wantAttempts, tt.wantStatus, tt.wantCode)
				}
			case "config":
				if !errors.As(err, &ce) || errors.Is(err, sidecar.ErrUnavailable) {
					t.Fatalf("err = %v (%T), want *ConfigError", err, err)
				}
				if ce.Status != tt.wantStatus || ce.Code != tt.wantCode {
					t.Errorf("ConfigError = %d %q, want %d %q", ce.Status, ce.Code, tt.wantStatus, tt.wantCode)
				}
				if tt.wantMessage != "" && ce.Message != tt.wantMessage {
					t.Errorf("ConfigError.Message = %.80q (len %d), want %.80q", ce.Message, len(ce.Message), tt.wantMessage)
				}
			}
		})
	}
}

func TestPublishConnectionRefusedIsUnavailableFast(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there now

	c, _ := newClient("http://"+addr, func(o *testOptions) {
		o.PublishTimeout = 300 * time.Millisecond
		o.Backoff = func(int) time.Duration { return 10 * time.Millisecond }
	})
	start := time.Now()
	err = c.Publish(context.Background(), publish.NewTaskCreated(taskID, "x"), publish.TraceContext{})
	elapsed := time.Since(start)

	var ue *sidecar.UnavailableError
	if !errors.As(err, &ue) {
		t.Fatalf("err = %v (%T), want *UnavailableError", err, err)
	}
	if ue.Attempts < 2 {
		t.Errorf("attempts = %d, want retries while the deadline allows", ue.Attempts)
	}
	if elapsed > 2*time.Second {
		t.Errorf("took %s, want about the 300ms publish timeout", elapsed)
	}
}

func TestPublishAttemptTimeoutIsRetried(t *testing.T) {
	fake := sidecartest.New(t)
	release := fake.Hold()
	c, _ := newClient(fake.URL, func(o *testOptions) {
		o.AttemptTimeout = 50 * time.Millisecond
		o.PublishTimeout = 5 * time.Second
		o.Backoff = func(int) time.Duration {
			release() // the sidecar recovers before the retry
			return 0
		}
	})
	if err := c.Publish(context.Background(), publish.NewTaskCreated(taskID, "x"), publish.TraceContext{}); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if n := len(fake.Publishes()); n != 2 {
		t.Errorf("publish calls = %d, want 2 (one timed out, one accepted)", n)
	}
}

func TestPublishStopsAtTheDeadline(t *testing.T) {
	fake := sidecartest.New(t)
	fake.Hold() // never released: the sidecar hangs
	c, _ := newClient(fake.URL, func(o *testOptions) {
		o.PublishTimeout = 200 * time.Millisecond
	})
	start := time.Now()
	err := c.Publish(context.Background(), publish.NewTaskCreated(taskID, "x"), publish.TraceContext{})
	if !errors.Is(err, sidecar.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want unavailable wrapping context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %s, want about the 200ms publish timeout", d)
	}
}

func TestPublishLogLine(t *testing.T) {
	tests := []struct {
		name    string
		script  sidecartest.Response
		trace   string
		want    map[string]any
		without []string
	}{
		{
			name: "published", script: sidecartest.Published, trace: traceParent,
			want:    map[string]any{"level": "info", "outcome": "published", "attempts": 1.0, "traceparent": traceParent},
			without: []string{"sidecar_error_code"},
		},
		{
			name: "rejected", script: sidecartest.NotFound,
			want:    map[string]any{"level": "error", "outcome": "rejected", "sidecar_error_code": sidecar.CodeNotFound, "status": 404.0},
			without: []string{"traceparent"},
		},
		{
			name: "rejected without an error code", script: sidecartest.Unauthorized,
			want:    map[string]any{"level": "error", "outcome": "rejected", "status": 401.0, "error": "invalid api token"},
			without: []string{"sidecar_error_code"},
		},
		{
			name: "unavailable", script: sidecartest.PublishFailed,
			want: map[string]any{"level": "warn", "outcome": "unavailable", "attempts": 2.0, "sidecar_error_code": sidecar.CodePublishMessage},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := sidecartest.New(t)
			fake.Token = "s3cr3t-token"
			fake.Script(tt.script)
			c, logs := newClient(fake.URL, func(o *testOptions) {
				o.APIToken = "s3cr3t-token"
				o.Backoff = waitsUntil(2)
				o.Logger = o.Logger.Level(zerolog.InfoLevel) // retries log at debug
			})
			_ = c.Publish(context.Background(), publish.NewTaskCreated(taskID, "x"), publish.TraceContext{TraceParent: tt.trace})

			out := logs.String()
			if strings.Contains(out, "s3cr3t-token") {
				t.Fatalf("log contains the API token: %s", out)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 1 {
				t.Fatalf("log lines = %d, want exactly 1:\n%s", len(lines), out)
			}
			var line map[string]any
			if err := json.Unmarshal([]byte(lines[0]), &line); err != nil {
				t.Fatalf("log line is not JSON: %v: %s", err, lines[0])
			}
			want := map[string]any{"task_id": taskID, "topic": "task-events", "pubsubname": "pubsub"}
			for k, v := range tt.want {
				want[k] = v
			}
			for k, v := range want {
				if line[k] != v {
					t.Errorf("log %s = %v, want %v", k, line[k], v)
				}
			}
			if _, ok := line["duration_ms"].(float64); !ok {
				t.Errorf("log duration_ms = %v, want a number", line["duration_ms"])
			}
			for _, k := range tt.without {
				if _, ok := line[k]; ok {
					t.Errorf("log has %s, want it absent", k)
				}
			}
		})
	}
}

func TestExponentialBackoff(t *testing.T) {
	b := publish.Exponential(50*time.Millisecond, time.Second)
	for n := 1; n <= 40; n++ {
		ceiling := time.Second
		if n <= 5 {
			ceiling = 50 * time.Millisecond << (n - 1)
		}
		for range 50 {
			if d := b(n); d < ceiling/2 || d > ceiling {
				t.Fatalf("backoff(%d) = %s, want within [%s, %s]", n, d, ceiling/2, ceiling)
			}
		}
	}
}
