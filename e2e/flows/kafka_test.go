package flows

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/taskevents/taskevents/e2e/internal/suite"
	"github.com/taskevents/taskevents/tools/harness"
)

// Kafka only: while 1,000 tasks are being published, the worker (app and sidecar, as when
// its pod dies) is killed with SIGKILL once it has handled some and daprd has committed
// some offsets, then started again. daprd marks a Kafka offset only after the app answered
// SUCCESS, so:
//   - at every moment the group's committed offsets never exceed what the worker handled;
//   - every task is handled: none lost, whether published before, during or after the outage;
//   - only tasks handled after the last commit come again (at-least-once); the new worker
//     process, its idempotency memory gone with the old one, handles them again, and they
//     are reported as redelivered.
func TestKafkaWorkerRestart(t *testing.T) {
	if !slices.Contains(suite.Brokers(), "kafka") {
		t.Skip("kafka is not in BROKERS")
	}
	sys := suite.StartSystem(t, "kafka", harness.SystemOptions{})
	w, sidecar := sys.Workers[0], sys.WorkerSidecars[0]
	before := w.Process
	kafka := sys.Broker.Overrides["brokers"]

	// A steady stream of 1,000 tasks (4 clients) that goes on through the outage: the
	// publisher's sidecar does not depend on the worker.
	type result struct {
		accepted map[string]string
		failures []string
	}
	done := make(chan result, 1)
	go func() {
		accepted, failures := suite.PublishAll(sys.Publisher, 1000, 4)
		done <- result{accepted, failures}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var committed int64
	for {
		c, err := harness.KafkaCommitted(ctx, kafka, suite.Contract.WorkerAppID, suite.Contract.Topic)
		n := suite.Handled(before) // read after the offsets: handling comes first
		if err == nil && c > int64(n) {
			t.Fatalf("the group committed %d offsets while the worker had handled only %d tasks", c, n)
		}
		if err == nil && c > 0 && n >= 250 {
			committed = c
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no offset committed after the worker handled %d tasks (last error: %v)", n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	sidecar.Kill()
	before.Kill()
	handledBefore := suite.Handled(before)

	if err := w.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sidecar.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	res := <-done
	if len(res.failures) > 0 {
		t.Fatalf("%d of 1000 publishes failed, first: %s", len(res.failures), res.failures[0])
	}
	published := res.accepted

	// Wait until every task was handled by the old or the new worker process.
	deadline := time.Now().Add(90 * time.Second)
	var counts map[string]int
	for {
		counts = map[string]int{}
		for _, p := range []*harness.Process{before, w.Process} {
			for _, e := range harness.Events(p.Lines(), "EVENT RECEIVED") {
				if e.Outcome == "SUCCESS" && !e.Duplicate {
					counts[e.TaskID]++
				}
			}
		}
		missing := 0
		for id := range published {
			// The worker records the task and then logs it: one killed between the two
			// (or whose sidecar died before answering the commit) logged nothing, and the
			// redelivery finds the event done. The state store's record is the proof.
			if counts[id] == 0 && suite.Recorded(context.Background(), sidecar.HTTPURL, id) {
				counts[id] = 1
			}
			if counts[id] == 0 {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	lost, redelivered, handledN, dups := 0, 0, 0, 0
	var lostIDs []string
	for id := range published {
		if n := counts[id]; n == 0 {
			lost++
			lostIDs = append(lostIDs, id)
		} else {
			handledN++
			redelivered += n - 1
		}
	}
	for _, p := range []*harness.Process{before, w.Process} {
		for _, e := range harness.Events(p.Lines(), "EVENT RECEIVED") {
			if e.Duplicate {
				dups++
			}
		}
	}
	line := fmt.Sprintf("e2e kafka worker-restart: published=%d handled=%d lost=%d duplicates=%d"+
		" killed_after=%d committed_before_kill=%d redelivered_after_restart=%d",
		len(published), handledN, lost, dups, handledBefore, committed, redelivered)
	fmt.Println(line)
	if lost > 0 {
		sort.Strings(lostIDs)
		t.Errorf("%s; lost ids (first 5): %v", line, lostIDs[:min(5, len(lostIDs))])
	}
	if handledBefore >= len(published) {
		t.Errorf("the worker was killed after it had handled everything (%d): not in the middle", handledBefore)
	}
	// Committed offsets are not delivered again: at most what was handled after the last
	// commit we saw comes back.
	if limit := handledBefore - int(committed); redelivered > limit {
		t.Errorf("%d tasks were handled again, more than the %d handled after the last commit", redelivered, limit)
	}
}
