package flows

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskevents/taskevents/e2e/internal/suite"
	"github.com/taskevents/taskevents/tools/harness"
)

// TestDefaultSystem runs the scenarios that share the default configuration on one system
// per broker: the curl flow, 1,000 tasks, DROP to the dead-letter topic, and declarative
// routing.
func TestDefaultSystem(t *testing.T) {
	for _, broker := range suite.Brokers() {
		t.Run(broker, func(t *testing.T) {
			sys := suite.StartSystem(t, broker, harness.SystemOptions{})
			t.Run("happy-path", func(t *testing.T) { happyPath(t, broker, sys) })
			t.Run("declarative", func(t *testing.T) { declarative(t, broker, sys) })
			t.Run("thousand", func(t *testing.T) { thousand(t, broker, sys) })
			t.Run("drop-to-deadletter", func(t *testing.T) { dropToDeadLetter(t, broker, sys) })
			t.Run("hot-reload", func(t *testing.T) { hotReload(t, broker, sys) })
		})
	}
}

// Scenario 1: the README's curl, handled by the worker within 5 s, with the answer body the README shows ({id, title, event: published}).
func happyPath(t *testing.T, broker string, sys *harness.System) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	c, r, err := suite.CreateTask(ctx, sys.Publisher, "Learn Dapr pub/sub")
	if err != nil || r.Status != http.StatusAccepted {
		t.Fatalf("POST /tasks = %d %s (%v), want 202", r.Status, r.Body, err)
	}
	if _, err := uuid.Parse(c.ID); err != nil || c.Title != "Learn Dapr pub/sub" || c.Event != "published" {
		t.Fatalf("body %s is not the documented {id, title, event: published}", r.Body)
	}
	line, err := sys.Workers[0].WaitForLine(ctx, func(l string) bool {
		return strings.Contains(l, `"EVENT RECEIVED"`) && strings.Contains(l, c.ID)
	})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	ev := harness.Events([]string{line}, "EVENT RECEIVED")
	if len(ev) != 1 || ev[0].Title != c.Title || ev[0].Outcome != "SUCCESS" || ev[0].Type != "task.created" ||
		ev[0].EventID != c.ID || ev[0].Topic != suite.Contract.Topic {
		t.Fatalf("worker log line %s does not carry the task as published", line)
	}
	if took > 5*time.Second {
		t.Errorf("handled after %s, want within 5s", took)
	}
	suite.Summarize(t, broker, "happy-path", map[string]string{c.ID: c.Title},
		harness.TallyWorkers(sys.Workers), fmt.Sprintf(" latency_ms=%d", took.Milliseconds()))
}

// Scenario 7: routing comes only from subscriptions/: daprd lists it as DECLARATIVE with
// the rule, and the worker does not serve programmatic subscriptions.
func declarative(t *testing.T, _ string, sys *harness.System) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	md, raw, err := suite.GetMetadata(ctx, sys.WorkerSidecars[0].HTTPURL)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range md.Subscriptions {
		if s.Topic != suite.Contract.Topic {
			continue
		}
		found = true
		if s.Type != "DECLARATIVE" || s.PubsubName != suite.Contract.PubSub || s.DeadLetterTopic != suite.Contract.DeadLetterTopic {
			t.Errorf("subscription %+v, want DECLARATIVE on pubsub with dead letters to task-events-deadletter", s)
		}
		if len(s.Rules) == 0 || s.Rules[0].Match != `event.type == "`+suite.Contract.EventType+`"` || s.Rules[0].Path != suite.Contract.Route {
			t.Errorf("rules %+v, want the task.created rule to /events/todo first", s.Rules)
		}
	}
	if !found {
		t.Fatalf("daprd lists no subscription to task-events: %s", raw)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, sys.Workers[0].URL+"/dapr/subscribe", nil)
	resp, err := suite.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("worker GET /dapr/subscribe = %d, want 404 (no programmatic subscriptions)", resp.StatusCode)
	}
}

// Scenario 2: 1,000 tasks at concurrency 32, each handled exactly once.
func thousand(t *testing.T, broker string, sys *harness.System) {
	start := time.Now()
	published := suite.PublishMany(t, sys.Publisher, 1000, 32)
	publishTook := time.Since(start)
	tally := suite.WaitHandled(t, sys.Workers, published, 60*time.Second)
	suite.Summarize(t, broker, "thousand", published, tally, fmt.Sprintf(" publish_per_s=%.0f end_to_end_s=%.2f",
		float64(len(published))/publishTook.Seconds(), time.Since(start).Seconds()))
}

// Scenario 4: an invalid payload published straight to the sidecar is answered DROP and
// reaches /events/deadletter through the dead-letter topic.
func dropToDeadLetter(t *testing.T, broker string, sys *harness.System) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id := uuid.NewString()
	q := url.Values{"metadata.cloudevent.id": {id}, "metadata.cloudevent.type": {"task.created"}}
	r, err := suite.Post(ctx, sys.PublisherSidecar.HTTPURL+"/v1.0/publish/pubsub/task-events?"+q.Encode(),
		"application/json", `{"event_type":"task.created","task_id":"not-a-uuid","title":""}`, nil)
	if err != nil || r.Status != http.StatusNoContent {
		t.Fatalf("publish to sidecar = %d %s (%v), want 204", r.Status, r.Body, err)
	}
	w := sys.Workers[0]
	if _, err := w.WaitForLine(ctx, func(l string) bool {
		return strings.Contains(l, `"EVENT RECEIVED"`) && strings.Contains(l, id) && strings.Contains(l, `"DROP"`)
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.WaitForLine(ctx, func(l string) bool {
		return strings.Contains(l, `"DEAD LETTER"`) && strings.Contains(l, id)
	}); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("e2e %s drop-to-deadletter: published=1 handled=0 lost=0 duplicates=0 dropped=1 dead_lettered=1\n", broker)
}

// A Subscription added while daprd runs is picked up without a restart (hot reload is on
// by default from Dapr 1.18): the GitOps promise that a change reaches running sidecars.
func hotReload(t *testing.T, broker string, sys *harness.System) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	topic := "task-events-hotreload"
	sub := fmt.Sprintf(`apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata:
  name: hot-reload
spec:
  pubsubname: pubsub
  topic: %s
  routes:
    default: /events/todo
scopes:
  - task-worker
`, topic)
	dir := sys.WorkerSidecars[0].Opts.Resources[0] // the generated resources directory
	if err := os.WriteFile(filepath.Join(dir, "hot-reload.yaml"), []byte(sub), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for !subscribed(ctx, t, sys.WorkerSidecars[0].HTTPURL, topic) {
		if ctx.Err() != nil {
			t.Fatalf("the running worker sidecar never listed the added subscription to %s", topic)
		}
		time.Sleep(100 * time.Millisecond)
	}
	loaded := time.Since(start)
	id := uuid.NewString()
	q := url.Values{"metadata.cloudevent.id": {id}, "metadata.cloudevent.type": {"task.created"}}
	body := fmt.Sprintf(`{"event_type":"task.created","task_id":"%s","title":"hot reload"}`, id)
	for {
		r, err := suite.Post(ctx, sys.PublisherSidecar.HTTPURL+"/v1.0/publish/pubsub/"+topic+"?"+q.Encode(),
			"application/json", body, nil)
		if err == nil && r.Status == http.StatusNoContent {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("publish to %s = %d %s (%v), want 204", topic, r.Status, r.Body, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	tally := suite.WaitHandled(t, sys.Workers, map[string]string{id: "hot reload"}, 30*time.Second)
	suite.Summarize(t, broker, "hot-reload", map[string]string{id: "hot reload"}, tally,
		fmt.Sprintf(" subscription_loaded_ms=%d", loaded.Milliseconds()))
}

func subscribed(ctx context.Context, t *testing.T, sidecarURL, topic string) bool {
	t.Helper()
	md, _, err := suite.GetMetadata(ctx, sidecarURL)
	if err != nil {
		return false
	}
	for _, s := range md.Subscriptions {
		if s.Topic == topic {
			return true
		}
	}
	return false
}
