package flows

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskevents/taskevents/e2e/internal/suite"
	"github.com/taskevents/taskevents/tools/harness"
)

// TestCoalesce sends a burst of concurrent POST /tasks through the real publisher and
// daprd: with coalescing (the default) some of them go together in bulk publishes, and
// still every task is accepted once, handled once, with its own CloudEvent id, type and
// partition key. With PUBLISH_COALESCE=false every publish goes alone.
func TestCoalesce(t *testing.T) {
	for _, broker := range suite.Brokers() {
		if broker != "redis" && broker != "kafka" {
			continue
		}
		t.Run(broker, func(t *testing.T) {
			sys := suite.StartSystem(t, broker, harness.SystemOptions{})
			burstOf(t, broker, sys, "coalesce", true)

			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			sys.Publisher.Setenv("PUBLISH_COALESCE", "false")
			if err := sys.Publisher.Restart(ctx); err != nil {
				t.Fatal(err)
			}
			burstOf(t, broker, sys, "coalesce-off", false)
		})
	}
}

const burstSize = 200

func burstOf(t *testing.T, broker string, sys *harness.System, scenario string, wantBatches bool) {
	t.Helper()
	// As many clients as requests: they all arrive while the first publishes are in flight.
	accepted, failures := suite.PublishAll(sys.Publisher, burstSize, burstSize)
	if len(failures) > 0 {
		t.Errorf("%d of %d requests not accepted, first: %s", len(failures), burstSize, failures[0])
	}
	if len(accepted)+len(failures) != burstSize {
		t.Errorf("%d distinct ids for %d accepted requests", len(accepted), burstSize-len(failures))
	}
	suite.WaitHandled(t, sys.Workers, accepted, 60*time.Second)

	// Exactly once each, as the task it was published as.
	handled := map[string]int{}
	for _, w := range sys.Workers {
		for _, e := range harness.Events(w.Lines(), "EVENT RECEIVED") {
			if _, ok := accepted[e.TaskID]; !ok || e.Outcome != "SUCCESS" || e.Duplicate {
				continue
			}
			handled[e.TaskID]++
			if e.EventID != e.TaskID || e.Type != "task.created" || e.Title != accepted[e.TaskID] {
				t.Errorf("task %s handled as CloudEvent id %q, type %q, title %q", e.TaskID, e.EventID, e.Type, e.Title)
			}
		}
	}
	for id := range accepted {
		if n := handled[id]; n != 1 {
			t.Errorf("task %s handled %d times, want once", id, n)
		}
	}
	if broker == "redis" {
		checkStreamEntries(t, sys.Broker.Overrides["redisHost"], accepted)
	}

	sizes := publishedBatchSizes(sys.Publisher.Lines())
	maxBatch := 0
	for _, s := range sizes {
		maxBatch = max(maxBatch, s)
	}
	fmt.Printf("e2e %s %s: requests=%d accepted=%d handled=%d max_batch=%d\n",
		broker, scenario, burstSize, len(accepted), len(handled), maxBatch)
	if len(sizes) != len(accepted) {
		t.Errorf("%d \"task event published\" log lines for %d accepted tasks", len(sizes), len(accepted))
	}
	switch {
	case wantBatches && maxBatch <= 1:
		t.Errorf("no publish of the burst went in a batch (largest batch_size %d); coalescing did not happen", maxBatch)
	case !wantBatches && maxBatch != 1:
		t.Errorf("largest batch_size %d with PUBLISH_COALESCE=false, want every publish alone", maxBatch)
	}
}

// publishedBatchSizes reads batch_size from the publisher's "task event published" lines.
func publishedBatchSizes(lines []string) []int {
	var out []int
	for _, l := range lines {
		var e struct {
			Message   string `json:"message"`
			BatchSize int    `json:"batch_size"`
		}
		if strings.HasPrefix(l, "{") && json.Unmarshal([]byte(l), &e) == nil && e.Message == "task event published" {
			out = append(out, e.BatchSize)
		}
	}
	return out
}

// checkStreamEntries reads the task-events stream in Redis: each accepted task is there
// with its own CloudEvent id and type in the event, and its own partitionKey in the
// metadata daprd stored beside it.
func checkStreamEntries(t *testing.T, addr string, accepted map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	msgs, err := rdb.XRange(ctx, suite.Contract.Topic, "-", "+").Result()
	if err != nil {
		t.Fatalf("XRANGE task-events: %v", err)
	}
	seen := map[string]bool{}
	for _, m := range msgs {
		data, _ := m.Values["data"].(string)
		meta, _ := m.Values["metadata"].(string)
		var ce struct {
			ID   string `json:"id"`
			Type string `json:"type"`
			Data struct {
				TaskID string `json:"task_id"`
			} `json:"data"`
		}
		var md map[string]string
		if json.Unmarshal([]byte(data), &ce) != nil || json.Unmarshal([]byte(meta), &md) != nil {
			continue
		}
		if _, ok := accepted[ce.Data.TaskID]; !ok {
			continue
		}
		seen[ce.Data.TaskID] = true
		if ce.ID != ce.Data.TaskID || ce.Type != "task.created" || md["partitionKey"] != ce.Data.TaskID {
			t.Errorf("stream entry of task %s: CloudEvent id %q, type %q, partitionKey %q; want its own id, task.created and its own id",
				ce.Data.TaskID, ce.ID, ce.Type, md["partitionKey"])
		}
	}
	var missing []string
	for id := range accepted {
		if !seen[id] {
			missing = append(missing, id)
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("%d accepted tasks not in the task-events stream, first %v", len(missing), missing[:min(3, len(missing))])
	}
}
