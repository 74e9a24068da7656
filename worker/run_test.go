package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/taskevents/taskevents/kit/kittest"
	"github.com/taskevents/taskevents/kit/logging"
	"github.com/taskevents/taskevents/kit/sidecar/sidecartest"
)

// logLines returns the parsed log lines with message msg.
func logLines(t *testing.T, out *logging.Buffer, msg string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("stdout line %q is not JSON: %v", sc.Text(), err)
		}
		if m["message"] == msg {
			lines = append(lines, m)
		}
	}
	return lines
}

func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &logging.Buffer{}
	const token = "run-test-token"
	fake := sidecartest.New(t)
	_, sidecarPort, _ := strings.Cut(strings.TrimPrefix(fake.URL, "http://"), ":")
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{
			"APP_PORT=0", "LISTEN_HOST=127.0.0.1", "OPS_PORT=0", "OPS_LISTEN_HOST=127.0.0.1", "APP_API_TOKEN=" + token,
			"DAPR_HTTP_PORT=" + sidecarPort, "DRAIN_DELAY=1s", "HANDLER_TIMEOUT=2s", "SHUTDOWN_TIMEOUT=5s",
		}, out)
	}()

	var base, ops string
	kittest.Eventually(t, `the "listening" line`, func() bool {
		if l := logLines(t, out, "listening"); len(l) == 1 {
			base, ops = "http://"+l[0]["addr"].(string), "http://"+l[0]["ops_addr"].(string)
			return true
		}
		return false
	})
	kittest.Eventually(t, "/readyz 200", func() bool { code, _ := kittest.Get(base + "/readyz"); return code == 200 })

	envelope := `{"topic":"task-events","pubsubname":"pubsub","traceid":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","tracestate":"",` +
		`"data":{"event_type":"task.created","task_id":"3f0c8a51-6b7e-4d2a-9c1e-2b5d7f9a0c11","title":"run test"},` +
		`"id":"9d1e3c0a-0000-4000-8000-000000000001","specversion":"1.0","datacontenttype":"application/json","source":"task-api",` +
		`"type":"task.created","time":"2026-11-27T16:00:00Z","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}`
	req, _ := http.NewRequest(http.MethodPost, base+"/events/todo", strings.NewReader(envelope))
	req.Header.Set("Content-Type", "application/cloudevents+json")
	req.Header.Set("dapr-api-token", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != `{"status":"SUCCESS"}` {
		t.Fatalf("POST /events/todo = %d %s", resp.StatusCode, body)
	}
	received := logLines(t, out, "EVENT RECEIVED")
	if len(received) != 1 || received[0]["task_id"] != "3f0c8a51-6b7e-4d2a-9c1e-2b5d7f9a0c11" || received[0]["outcome"] != "SUCCESS" {
		t.Fatalf("EVENT RECEIVED lines = %v", received)
	}
	if fake.Value("statestore", "task-3f0c8a51-6b7e-4d2a-9c1e-2b5d7f9a0c11") == nil {
		t.Errorf("the handled task was not recorded in the state store; keys: %v", fake.Keys("statestore", ""))
	}
	if code, _ := kittest.Get(base + "/metrics"); code != http.StatusNotFound {
		t.Errorf("/metrics on the event port = %d, want 404 (metrics are on the ops port)", code)
	}
	if code, _ := kittest.Get(ops + "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz on the ops port = %d", code)
	}
	if code, metrics := kittest.Get(ops + "/metrics"); code != 200 || !strings.Contains(metrics, `taskevents_worker_events_total{outcome="SUCCESS"} 1`) {
		t.Errorf("/metrics = %d, missing the SUCCESS count", code)
	}
	if n := len(logLines(t, out, "APP_API_TOKEN is not set: event routes accept requests from anyone who can reach this port")); n != 0 {
		t.Errorf("token warning logged although the token is set")
	}

	cancel()
	// During DRAIN_DELAY the server still answers, with readiness failed.
	kittest.Eventually(t, "/readyz 503 while draining", func() bool { code, _ := kittest.Get(base + "/readyz"); return code == 503 })
	kittest.Eventually(t, "ops /readyz 503 while draining", func() bool { code, _ := kittest.Get(ops + "/readyz"); return code == 503 })
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v after cancel, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	if len(logLines(t, out, "stopped")) != 1 {
		t.Error(`no "stopped" line`)
	}
	if strings.Contains(out.String(), token) {
		t.Error("the token appears in the log")
	}
}

func TestRunWarnsWithoutToken(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out := &logging.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"APP_PORT=0", "LISTEN_HOST=127.0.0.1", "OPS_PORT=0", "DRAIN_DELAY=0s", "FAULT_RETRY_FIRST=2"}, out)
	}()
	kittest.Eventually(t, `the "listening" line`, func() bool { return len(logLines(t, out, "listening")) == 1 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	warn := logLines(t, out, "APP_API_TOKEN is not set: event routes accept requests from anyone who can reach this port")
	if len(warn) != 1 || warn[0]["level"] != "warn" {
		t.Errorf("token warnings = %v, want exactly one at warn", warn)
	}
	faults := logLines(t, out, "fault injection enabled")
	if len(faults) != 1 || faults[0]["fault_retry_first"] != float64(2) {
		t.Errorf("fault injection lines = %v", faults)
	}
}

func TestRunBadConfig(t *testing.T) {
	tests := []struct{ env, want string }{
		{"APP_PORT=eighty", "APP_PORT"},
		{"FAULT_RETRY_RATE=2", "FAULT_RETRY_RATE must be between 0 and 1"},
		{"HANDLER_TIMEOUT=20s", "SHUTDOWN_TIMEOUT"},
		{"DEDUPE_LEASE=1s", "DEDUPE_LEASE"},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			err := run(context.Background(), []string{tt.env}, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run = %v, want an error naming %s", err, tt.want)
			}
		})
	}
}

func TestRunPortInUse(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &logging.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"APP_PORT=0", "LISTEN_HOST=127.0.0.1", "OPS_PORT=0", "DRAIN_DELAY=0s"}, out)
	}()
	var addr string
	kittest.Eventually(t, `the "listening" line`, func() bool {
		if l := logLines(t, out, "listening"); len(l) == 1 {
			addr = l[0]["addr"].(string)
			return true
		}
		return false
	})
	_, port, _ := strings.Cut(addr, ":")
	err := run(context.Background(), []string{"APP_PORT=" + port, "LISTEN_HOST=127.0.0.1", "OPS_PORT=0"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "listen") {
		t.Errorf("second run on the same port = %v, want a listen error", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
}

// PPROF_ADDR serves profiles on a listener of its own, warns off loopback, and stops
// with the rest; unset, nothing listens.
func TestRunPprof(t *testing.T) {
	tests := []struct {
		addr     string
		wantWarn bool
	}{
		{"", false},
		{"127.0.0.1:0", false},
		{"0.0.0.0:0", true},
	}
	for _, tt := range tests {
		t.Run("PPROF_ADDR="+tt.addr, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			out := &logging.Buffer{}
			done := make(chan error, 1)
			go func() {
				done <- run(ctx, []string{"APP_PORT=0", "LISTEN_HOST=127.0.0.1", "OPS_PORT=0", "OPS_LISTEN_HOST=127.0.0.1",
					"DRAIN_DELAY=0s", "DEDUPE_STORE=memory", "PPROF_ADDR=" + tt.addr}, out)
			}()
			kittest.Eventually(t, `the "listening" line`, func() bool { return len(logLines(t, out, "listening")) == 1 })
			serving := logLines(t, out, "serving pprof")
			if tt.addr == "" {
				if len(serving) != 0 {
					t.Fatalf("pprof served with PPROF_ADDR unset: %v", serving)
				}
			} else {
				if len(serving) != 1 {
					t.Fatalf(`"serving pprof" lines = %v`, serving)
				}
				_, port, _ := net.SplitHostPort(serving[0]["pprof_addr"].(string))
				if code, body := kittest.Get("http://127.0.0.1:" + port + "/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
					t.Errorf("GET /debug/pprof/ = %d", code)
				}
			}
			warned := len(logLines(t, out, "PPROF_ADDR is not a loopback address: anyone who can reach it can read profiles of this process")) == 1
			if warned != tt.wantWarn {
				t.Errorf("non-loopback warning logged = %v, want %v", warned, tt.wantWarn)
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("run: %v", err)
			}
		})
	}
}
