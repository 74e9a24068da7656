package flows

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/taskevents/taskevents/e2e/internal/suite"
	"github.com/taskevents/taskevents/tools/harness"
)

// Scenario 3: the worker answers RETRY to the first two deliveries of every event; the
// Resiliency policy in components/ makes daprd redeliver, and every task is handled once.
func TestRetryIsRedelivered(t *testing.T) {
	t.Parallel() // mostly waiting on daprd's retry back-off; runs beside TestMonitoring
	for _, broker := range suite.Brokers() {
		t.Run(broker, func(t *testing.T) {
			sys := suite.StartSystem(t, broker, harness.SystemOptions{WorkerEnv: []string{"FAULT_RETRY_FIRST=2"}})
			published := suite.PublishMany(t, sys.Publisher, 50, 8)
			tally := suite.WaitHandled(t, sys.Workers, published, 60*time.Second)
			if want := 2 * len(published); tally.Retries < want {
				t.Errorf("workers answered RETRY %d times, want at least %d (2 per event)", tally.Retries, want)
			}
			suite.Summarize(t, broker, "retry", published, tally, fmt.Sprintf(" retries=%d", tally.Retries))
		})
	}
}

// Scenario 5: tokens on both hops. The flow works; the worker rejects a caller without the
// token; a publisher holding the wrong sidecar token gets a 502 that says so.
func TestTokens(t *testing.T) {
	for _, broker := range suite.Brokers() {
		t.Run(broker, func(t *testing.T) {
			sys := suite.StartSystem(t, broker, harness.SystemOptions{
				DaprAPIToken: "e2e-dapr-token-0123456789", AppAPIToken: "e2e-app-token-9876543210"})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, r, err := suite.CreateTask(ctx, sys.Publisher, "with tokens")
			if err != nil || r.Status != http.StatusAccepted {
				t.Fatalf("POST /tasks with tokens = %d %s (%v), want 202", r.Status, r.Body, err)
			}
			tally := suite.WaitHandled(t, sys.Workers, map[string]string{c.ID: c.Title}, 10*time.Second)

			before := len(harness.Events(sys.Workers[0].Lines(), "EVENT RECEIVED"))
			envelope := fmt.Sprintf(`{"specversion":"1.0","id":"forged-%d","source":"attacker","type":"task.created",`+
				`"datacontenttype":"application/json","data":{"event_type":"task.created","task_id":"%s","title":"forged"}}`,
				time.Now().UnixNano(), c.ID)
			r, err = suite.Post(ctx, sys.Workers[0].URL+suite.Contract.Route, "application/cloudevents+json", envelope, nil)
			if err != nil || r.Status != http.StatusUnauthorized {
				t.Errorf("worker without dapr-api-token = %d %s (%v), want 401", r.Status, r.Body, err)
			}
			r, _ = suite.Post(ctx, sys.Workers[0].URL+suite.Contract.Route, "application/cloudevents+json", envelope,
				map[string]string{"dapr-api-token": "wrong"})
			if r.Status != http.StatusUnauthorized {
				t.Errorf("worker with a wrong dapr-api-token = %d, want 401", r.Status)
			}
			if after := len(harness.Events(sys.Workers[0].Lines(), "EVENT RECEIVED")); after != before {
				t.Errorf("an unauthenticated request was handled (%d → %d events)", before, after)
			}

			// A second publisher on the same sidecar, configured with the wrong token.
			h := suite.NewHarness(t)
			port, _ := harness.FreePort()
			wrong, err := h.StartApp(ctx, "publisher-wrong-token", suite.Bins.Publisher, port, []string{
				fmt.Sprintf("DAPR_HTTP_PORT=%d", sys.PublisherSidecar.Opts.HTTPPort), "DAPR_API_TOKEN=wrong"})
			if err != nil {
				t.Fatal(err)
			}
			_, r, err = suite.CreateTask(ctx, wrong, "wrong token")
			if err != nil || r.Status != http.StatusBadGateway || !strings.Contains(string(r.Body), "DAPR_API_TOKEN") {
				t.Errorf("publisher with a wrong sidecar token = %d %s (%v), want 502 naming DAPR_API_TOKEN", r.Status, r.Body, err)
			}
			suite.Summarize(t, broker, "tokens", map[string]string{c.ID: c.Title}, tally, " unauthorized_rejected=2")
		})
	}
}

// Scenario 6: the publisher's sidecar goes away: POST /tasks answers 503 with Retry-After
// within its publish timeout; once the sidecar is back, 202 again without a restart.
func TestSidecarRestart(t *testing.T) {
	for _, broker := range suite.Brokers() {
		t.Run(broker, func(t *testing.T) {
			sys := suite.StartSystem(t, broker, harness.SystemOptions{PublisherEnv: []string{"PUBLISH_TIMEOUT=2s"}})
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			if err := sys.PublisherSidecar.Stop(20 * time.Second); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_, r, err := suite.CreateTask(ctx, sys.Publisher, "sidecar is down")
			took := time.Since(start)
			if err != nil || r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" {
				t.Fatalf("POST /tasks with the sidecar down = %d %v %s (%v), want 503 with Retry-After", r.Status, r.Header, r.Body, err)
			}
			if took > 4*time.Second {
				t.Errorf("503 took %s, want within PUBLISH_TIMEOUT (2s) plus process scheduling on a loaded machine", took)
			}
			if err := sys.PublisherSidecar.Restart(ctx); err != nil {
				t.Fatal(err)
			}
			var c suite.Created
			for {
				c, r, err = suite.CreateTask(ctx, sys.Publisher, "sidecar is back")
				if err == nil && r.Status == http.StatusAccepted {
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("POST /tasks never recovered after the sidecar restart: %d %s (%v)", r.Status, r.Body, err)
				}
				time.Sleep(100 * time.Millisecond)
			}
			tally := suite.WaitHandled(t, sys.Workers, map[string]string{c.ID: c.Title}, 10*time.Second)
			suite.Summarize(t, broker, "sidecar-restart", map[string]string{c.ID: c.Title}, tally,
				fmt.Sprintf(" unavailable_ms=%d", took.Milliseconds()))
		})
	}
}

// Scenario 8: three worker replicas (three sidecars, one app-id) share the topic: every
// task handled exactly once across them, and every replica takes part.
func TestThreeReplicas(t *testing.T) {
	for _, broker := range suite.Brokers() {
		t.Run(broker, func(t *testing.T) {
			sys := suite.StartSystem(t, broker, harness.SystemOptions{Workers: 3})
			published := suite.PublishMany(t, sys.Publisher, 1000, 32)
			tally := suite.WaitHandled(t, sys.Workers, published, 90*time.Second)
			for i, n := range tally.PerWorker {
				if n == 0 {
					t.Errorf("replica %d handled nothing: %v", i+1, tally.PerWorker)
				}
			}
			suite.Summarize(t, broker, "replicas", published, tally, fmt.Sprintf(" per_replica=%v", tally.PerWorker))
		})
	}
}
