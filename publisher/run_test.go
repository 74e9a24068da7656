package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/taskevents/taskevents/kit/kittest"
	"github.com/taskevents/taskevents/kit/logging"
	"github.com/taskevents/taskevents/kit/sidecar/sidecartest"
)

// app is run() in a goroutine.
type app struct {
	url    string
	opsURL string // OPS_PORT: /metrics and the probes
	stdout *logging.Buffer
	cancel context.CancelFunc
	done   chan struct{}
	err    error // valid once done is closed
}

// wait returns run's result, failing the test if it does not return.
func (a *app) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-a.done:
		return a.err
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return after cancel")
		return nil
	}
}

// startRun runs run() against the fake sidecar on a free port.
func startRun(t *testing.T, fake *sidecartest.Fake, extraEnv ...string) *app {
	t.Helper()
	_, port, _ := strings.Cut(fake.Listener.Addr().String(), ":")
	env := append([]string{
		"APP_PORT=0", "LISTEN_HOST=127.0.0.1", "OPS_PORT=0", "OPS_LISTEN_HOST=127.0.0.1",
		"DAPR_HOST=127.0.0.1", "DAPR_HTTP_PORT=" + port,
		"READINESS_INTERVAL=20ms", "DRAIN_DELAY=0s", "SHUTDOWN_TIMEOUT=5s", "PUBLISH_TIMEOUT=1s",
	}, extraEnv...)
	ctx, cancel := context.WithCancel(context.Background())
	a := &app{stdout: &logging.Buffer{}, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(a.done)
		a.err = run(ctx, env, a.stdout)
	}()
	t.Cleanup(func() {
		cancel()
		_ = a.wait(t)
	})

	kittest.Eventually(t, `the "listening" log line`, func() bool { addr, _ := listenAddrs(a.stdout.String()); return addr != "" })
	addr, ops := listenAddrs(a.stdout.String())
	a.url, a.opsURL = "http://"+addr, "http://"+ops
	return a
}

// listenAddrs reads the app and ops addresses from the "listening" line.
func listenAddrs(logs string) (addr, ops string) {
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var line struct {
			Message, Addr string
			OpsAddr       string `json:"ops_addr"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Message == "listening" {
			return line.Addr, line.OpsAddr
		}
	}
	return "", ""
}

func TestRun(t *testing.T) {
	fake := sidecartest.New(t)
	fake.Token = "run-test-token"
	fake.SetOutbound(http.StatusInternalServerError)
	fake.SetComponents("statestore") // no "pubsub": run should warn about it
	a := startRun(t, fake, "DAPR_API_TOKEN=run-test-token", "DRAIN_DELAY=300ms")
	url, stdout := a.url, a.stdout

	// Readiness follows the sidecar's outbound health, both ways.
	if code, body := kittest.Get(url + "/readyz"); code != 503 {
		t.Fatalf("/readyz before the sidecar is ready = %d %s, want 503", code, body)
	}
	if code, _ := kittest.Get(url + "/healthz"); code != 200 {
		t.Fatalf("/healthz = %d, want 200 regardless of the sidecar", code)
	}
	fake.SetOutbound(http.StatusNoContent)
	kittest.Eventually(t, "/readyz 200", func() bool { c, _ := kittest.Get(url + "/readyz"); return c == 200 })
	fake.SetOutbound(http.StatusInternalServerError)
	kittest.Eventually(t, "/readyz 503 after the sidecar went away", func() bool { c, _ := kittest.Get(url + "/readyz"); return c == 503 })
	fake.SetOutbound(http.StatusNoContent)
	kittest.Eventually(t, "/readyz 200 after the sidecar came back", func() bool { c, _ := kittest.Get(url + "/readyz"); return c == 200 })
	kittest.Eventually(t, "the missing-component warning", func() bool {
		return strings.Contains(stdout.String(), "the sidecar has no component named PUBSUB_NAME")
	})
	if n := fake.MetadataCalls(); n != 1 {
		t.Errorf("metadata calls = %d, want 1 (only after the first successful check)", n)
	}

	// A real publish through the real client.
	resp, err := http.Post(url+"/tasks", "application/json", strings.NewReader(`{"title":"from run"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /tasks = %d %s, want 202", resp.StatusCode, body)
	}
	if pubs := fake.Publishes(); len(pubs) != 1 || pubs[0].Path != "/v1.0/publish/pubsub/task-events" {
		t.Fatalf("publishes = %+v, want one to pubsub/task-events", pubs)
	}
	if !strings.Contains(stdout.String(), `"outcome":"published"`) || strings.Contains(stdout.String(), "run-test-token") {
		t.Errorf("logs lack the publish line or leak the token:\n%s", stdout)
	}

	// An Idempotency-Key is claimed in the sidecar's state store, with the token.
	first, second := postKeyed(t, url, "run-key"), postKeyed(t, url, "run-key")
	if first == "" || first != second {
		t.Errorf("task ids for one key = %q, %q; want the same", first, second)
	}
	if saves := fake.StateSaves(); len(saves) != 2 || saves[0].Store != "statestore" || saves[0].Status != 204 {
		t.Errorf("state saves = %+v, want two to statestore, the first accepted", saves)
	}
	if !strings.Contains(stdout.String(), "idempotency state store loaded by the sidecar") {
		t.Errorf("no log line about the state store:\n%s", stdout)
	}

	// The embedded OpenAPI document is the file in the repository.
	want, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if code, doc := kittest.Get(url + "/openapi.yaml"); code != 200 || doc != string(want) {
		t.Errorf("GET /openapi.yaml = %d, %d bytes; want 200 and openapi.yaml's %d bytes", code, len(doc), len(want))
	}

	// Drain: readiness turns 503 "draining" before the server stops, then run returns nil.
	a.cancel()
	kittest.Eventually(t, "/readyz draining", func() bool {
		c, b := kittest.Get(url + "/readyz")
		return c == 503 && strings.Contains(b, "draining")
	})
	if err := a.wait(t); err != nil {
		t.Fatalf("run = %v, want nil after a clean shutdown", err)
	}
	if !strings.Contains(stdout.String(), `"message":"stopped"`) {
		t.Errorf("no shutdown log line:\n%s", stdout)
	}
}

// postKeyed creates a task with an Idempotency-Key and returns its id.
func postKeyed(t *testing.T, url, key string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+"/tasks", strings.NewReader(`{"title":"keyed"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var c struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /tasks with a key = %d, %v", resp.StatusCode, err)
	}
	return c.ID
}

func TestRunMemoryIdempotencyStore(t *testing.T) {
	fake := sidecartest.New(t)
	fake.SetComponents("pubsub") // no state store, and none needed
	a := startRun(t, fake, "IDEMPOTENCY_STORE=memory", "IDEMPOTENCY_KEY_TTL=1h")
	kittest.Eventually(t, "/readyz 200", func() bool { c, _ := kittest.Get(a.url + "/readyz"); return c == 200 })
	if first, second := postKeyed(t, a.url, "k"), postKeyed(t, a.url, "k"); first != second {
		t.Errorf("task ids for one key = %q, %q; want the same", first, second)
	}
	if n := len(fake.StateSaves()); n != 0 {
		t.Errorf("%d state saves, want none with IDEMPOTENCY_STORE=memory", n)
	}
	kittest.Eventually(t, "the component check", func() bool {
		return strings.Contains(a.stdout.String(), "pub/sub component loaded by the sidecar")
	})
	if strings.Contains(a.stdout.String(), "IDEMPOTENCY_STORE") {
		t.Errorf("a memory store should not be checked for in the sidecar:\n%s", a.stdout)
	}
}

func TestRunWarnsAboutAMissingStateStore(t *testing.T) {
	fake := sidecartest.New(t)
	a := startRun(t, fake) // the fake lists only "pubsub"
	kittest.Eventually(t, "the missing state store warning", func() bool {
		return strings.Contains(a.stdout.String(), "the sidecar has no component named IDEMPOTENCY_STORE")
	})
}

func TestRunReadinessIsNotCheckedPerProbe(t *testing.T) {
	fake := sidecartest.New(t)
	url := startRun(t, fake, "READINESS_INTERVAL=1h").url
	kittest.Eventually(t, "/readyz 200", func() bool { c, _ := kittest.Get(url + "/readyz"); return c == 200 })
	for range 20 {
		kittest.Get(url + "/readyz")
	}
	if n := fake.OutboundChecks(); n != 1 {
		t.Errorf("outbound checks = %d after 20+ probes, want 1 (the immediate first check)", n)
	}
}

func TestRunBadEnvironment(t *testing.T) {
	for _, tt := range []struct{ env, name string }{
		{"APP_PORT=eighty", "APP_PORT"},
		{"PUBLISH_TIMEOUT=-1s", "PUBLISH_TIMEOUT"},
		{"LOG_LEVEL=loud", "LOG_LEVEL"},
		{"APP_PORT=" + strconv.Itoa(1<<17), "APP_PORT"},
	} {
		t.Run(tt.env, func(t *testing.T) {
			err := run(context.Background(), []string{tt.env}, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.name) {
				t.Errorf("run with %s = %v, want an error naming %s", tt.env, err, tt.name)
			}
		})
	}
}

func TestRunPortInUse(t *testing.T) {
	fake := sidecartest.New(t)
	_, port, _ := strings.Cut(fake.Listener.Addr().String(), ":")
	err := run(context.Background(), []string{"LISTEN_HOST=127.0.0.1", "APP_PORT=" + port}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "APP_PORT") {
		t.Errorf("run on a busy port = %v, want an error naming APP_PORT", err)
	}
}
