package publish

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/taskevents/taskevents/kit/kittest"
	"github.com/taskevents/taskevents/kit/logging"
	"github.com/taskevents/taskevents/kit/sidecar"
	"github.com/taskevents/taskevents/kit/sidecar/sidecartest"
)

// rig is a Publisher in front of a real sidecar client and a fake sidecar.
type rig struct {
	c    *Publisher
	fake *sidecartest.Fake
	logs *logging.Buffer
}

func newRig(t *testing.T, o Options) *rig {
	t.Helper()
	fake := sidecartest.New(t)
	logs := &logging.Buffer{}
	if o.PublishTimeout == 0 {
		o.PublishTimeout = 5 * time.Second
	}
	o.PubSubName, o.Topic, o.Backoff, o.Logger = "pubsub", "task-events", threeAttempts, zerolog.New(logs)
	client := sidecar.New(sidecar.Options{BaseURL: fake.URL})
	t.Cleanup(client.Close)
	c := New(client.Topic("pubsub", "task-events"), o)
	t.Cleanup(c.Close)
	return &rig{c: c, fake: fake, logs: logs}
}

// threeAttempts retries at once twice, then asks for a wait past any
// deadline, so a publish that keeps failing gives up after three attempts.
func threeAttempts(n int) time.Duration {
	if n < 3 {
		return time.Millisecond
	}
	return time.Hour
}

// queued is how many entries wait for a sender (abandoned ones included).
func (c *Publisher) queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

// calls runs Publish calls in goroutines and collects their errors by id.
type calls struct {
	wg   sync.WaitGroup
	mu   sync.Mutex
	errs map[string]error
}

func (cs *calls) publish(ctx context.Context, c *Publisher, id string, trace TraceContext) {
	cs.wg.Go(func() {
		err := c.Publish(ctx, NewTaskCreated(id, "title "+id), trace)
		cs.mu.Lock()
		defer cs.mu.Unlock()
		if cs.errs == nil {
			cs.errs = map[string]error{}
		}
		cs.errs[id] = err
	})
}

func (cs *calls) wait() map[string]error {
	cs.wg.Wait()
	return cs.errs
}

// queueBehindHeld holds the fake sidecar, starts a first publish ("first")
// and waits until the sidecar has it, then queues ids one by one, in order.
func (r *rig) queueBehindHeld(t *testing.T, cs *calls, ids ...string) (release func()) {
	t.Helper()
	release = r.fake.Hold()
	t.Cleanup(release)
	cs.publish(context.Background(), r.c, "first", TraceContext{})
	kittest.Eventually(t, "the first publish to reach the sidecar", func() bool { return len(r.fake.Publishes()) == 1 })
	for i, id := range ids {
		cs.publish(context.Background(), r.c, id, TraceContext{TraceParent: traceparent(id)})
		kittest.Eventually(t, "entry "+id+" to queue", func() bool { return r.c.queued() == i+1 })
	}
	return release
}

func traceparent(id string) string {
	return fmt.Sprintf("00-%032x-%016x-01", len(id)+1, len(id)+2)
}

func ids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("task-%02d", i)
	}
	return out
}

func bulkIDs(t *testing.T, b sidecartest.BulkRequest) []string {
	t.Helper()
	var out []string
	for _, e := range b.Entries {
		var ev TaskCreated
		if err := json.Unmarshal(e.Event, &ev); err != nil {
			t.Fatalf("entry event %s: %v", e.Event, err)
		}
		out = append(out, ev.TaskID)
	}
	return out
}

func TestLoneRequestUsesTheSinglePath(t *testing.T) {
	r := newRig(t, Options{MaxBatch: 100, MaxInFlight: 4})
	if err := r.c.Publish(context.Background(), NewTaskCreated("only", "alone"), TraceContext{}); err != nil {
		t.Fatal(err)
	}
	if p, b := len(r.fake.Publishes()), len(r.fake.BulkPublishes()); p != 1 || b != 0 {
		t.Fatalf("single publishes = %d, bulk = %d; want 1 and 0", p, b)
	}
	if got := r.fake.Publishes()[0].Query.Get("metadata.cloudevent.id"); got != "only" {
		t.Errorf("cloudevent.id = %q, want the task id", got)
	}
	if !strings.Contains(r.logs.String(), `"batch_size":1`) {
		t.Errorf("log line lacks batch_size 1: %s", r.logs)
	}
}

func TestBurstCoalescesInArrivalOrder(t *testing.T) {
	r := newRig(t, Options{MaxBatch: 100, MaxInFlight: 1})
	var cs calls
	want := ids(20)
	r.queueBehindHeld(t, &cs, want...)()
	for id, err := range cs.wait() {
		if err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	bulks := r.fake.BulkPublishes()
	if len(bulks) != 1 {
		t.Fatalf("bulk publishes = %d, want the 20 queued events in one", len(bulks))
	}
	b := bulks[0]
	if b.Path != "/v1.0-alpha1/publish/bulk/pubsub/task-events" || b.Header.Get("Content-Type") != "application/json" {
		t.Errorf("bulk request %s with Content-Type %q", b.Path, b.Header.Get("Content-Type"))
	}
	if got := bulkIDs(t, b); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("entries in order %v, want arrival order %v", got, want)
	}
	for i, e := range b.Entries {
		id := want[i]
		md := e.Metadata
		if e.EntryID != fmt.Sprint(i) || e.ContentType != "application/json" || md["cloudevent.id"] != id ||
			md["cloudevent.type"] != "task.created" || md["partitionKey"] != id || md["cloudevent.traceparent"] != traceparent(id) {
			t.Errorf("entry %d = %+v, want its own id, type, partition key and traceparent", i, e)
		}
	}
	if n := strings.Count(r.logs.String(), `"batch_size":20`); n != 20 {
		t.Errorf("%d log lines with batch_size 20, want one per event", n)
	}
}

func TestBatchCap(t *testing.T) {
	r := newRig(t, Options{MaxBatch: 3, MaxInFlight: 1})
	var cs calls
	r.queueBehindHeld(t, &cs, ids(7)...)()
	cs.wait()
	var sizes []int
	for _, b := range r.fake.BulkPublishes() {
		sizes = append(sizes, len(b.Entries))
	}
	// 7 queued: two bulks of 3, then the last one alone on the single path.
	if fmt.Sprint(sizes) != "[3 3]" || len(r.fake.Publishes()) != 2 {
		t.Errorf("bulk sizes %v and %d single publishes, want [3 3] and 2 (first, last)", sizes, len(r.fake.Publishes()))
	}
}

func TestPartialFailure(t *testing.T) {
	brokerDown := sidecartest.FailEntries("0", "1", "2", "3")
	tests := []struct {
		name      string
		bulk      func([]sidecartest.BulkEntry) sidecartest.Response
		single    []sidecartest.Response // answers after "first"
		wantErr   map[string]string      // id → "config" or "unavailable"; others nil
		wantAlone []string               // ids retried alone
	}{
		{
			name:      "failed entries are retried alone, the rest is done",
			bulk:      func([]sidecartest.BulkEntry) sidecartest.Response { return sidecartest.FailEntries("1", "3") },
			wantAlone: []string{"task-01", "task-03"},
		},
		{
			name:      "a failed entry that keeps failing is the only 503",
			bulk:      func([]sidecartest.BulkEntry) sidecartest.Response { return sidecartest.FailEntries("2") },
			single:    []sidecartest.Response{sidecartest.PublishFailed},
			wantErr:   map[string]string{"task-02": "unavailable"},
			wantAlone: []string{"task-02", "task-02"}, // attempts 2 and 3 (the bulk was the first)
		},
		{
			name:      "no failedEntries list means every entry failed",
			bulk:      func([]sidecartest.BulkEntry) sidecartest.Response { return sidecartest.PublishFailed },
			wantAlone: ids(4),
		},
		{
			name:    "a refused bulk request fails every entry as a rejection",
			bulk:    func([]sidecartest.BulkEntry) sidecartest.Response { return sidecartest.Forbidden },
			wantErr: map[string]string{"task-00": "config", "task-01": "config", "task-02": "config", "task-03": "config"},
		},
		{
			name:      "entries the sidecar refuses when retried alone",
			bulk:      func([]sidecartest.BulkEntry) sidecartest.Response { return brokerDown },
			single:    []sidecartest.Response{sidecartest.NotFound},
			wantErr:   map[string]string{"task-00": "config", "task-01": "config", "task-02": "config", "task-03": "config"},
			wantAlone: ids(4),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, Options{MaxBatch: 100, MaxInFlight: 1, PublishTimeout: 2 * time.Second})
			r.fake.ScriptBulk(tt.bulk)
			r.fake.Script(append([]sidecartest.Response{sidecartest.Published}, tt.single...)...)
			var cs calls
			r.queueBehindHeld(t, &cs, ids(4)...)()
			errs := cs.wait()
			for _, id := range ids(4) {
				err := errs[id]
				var ce *sidecar.ConfigError
				switch tt.wantErr[id] {
				case "":
					if err != nil {
						t.Errorf("%s: %v, want published", id, err)
					}
				case "config":
					if !errors.As(err, &ce) || ce.Status == 0 {
						t.Errorf("%s: %v, want a *ConfigError", id, err)
					}
				case "unavailable":
					if !errors.Is(err, sidecar.ErrUnavailable) {
						t.Errorf("%s: %v, want unavailable", id, err)
					}
				}
			}
			var alone []string
			for _, p := range r.fake.Publishes()[1:] {
				alone = append(alone, p.Query.Get("metadata.cloudevent.id"))
			}
			// Retries run concurrently; compare as sets.
			if !sameSet(alone, tt.wantAlone) {
				t.Errorf("retried alone %v, want %v", alone, tt.wantAlone)
			}
		})
	}
}

func sameSet(a, b []string) bool {
	count := map[string]int{}
	for _, s := range a {
		count[s]++
	}
	for _, s := range b {
		count[s]--
	}
	for _, n := range count {
		if n != 0 {
			return false
		}
	}
	return true
}

func TestDeadlineWhileQueued(t *testing.T) {
	r := newRig(t, Options{MaxBatch: 100, MaxInFlight: 1})
	release := r.fake.Hold()
	defer release()
	var cs calls
	cs.publish(context.Background(), r.c, "first", TraceContext{})
	kittest.Eventually(t, "the first publish to reach the sidecar", func() bool { return len(r.fake.Publishes()) == 1 })

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := r.c.Publish(ctx, NewTaskCreated("late", "x"), TraceContext{})
	var ue *sidecar.UnavailableError
	if !errors.As(err, &ue) || ue.Attempts != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish = %v, want unavailable after 0 attempts, past its deadline", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("returned after %s; the deadline was 50ms", took)
	}
	release()
	if err := cs.wait()["first"]; err != nil {
		t.Fatal(err)
	}
	// The expired entry is never sent.
	for _, p := range r.fake.Publishes() {
		if p.Query.Get("metadata.cloudevent.id") == "late" {
			t.Error("the expired entry was published after its caller got a 503")
		}
	}
	if len(r.fake.BulkPublishes()) != 0 {
		t.Error("the expired entry went out in a bulk publish")
	}
	if !strings.Contains(r.logs.String(), `"task_id":"late"`) || !strings.Contains(r.logs.String(), `"outcome":"unavailable"`) {
		t.Errorf("no unavailable log line for the expired entry: %s", r.logs)
	}
}

func TestCancellationWhileQueued(t *testing.T) {
	r := newRig(t, Options{MaxBatch: 100, MaxInFlight: 1})
	var cs calls
	release := r.queueBehindHeld(t, &cs, "a")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.c.Publish(ctx, NewTaskCreated("cancelled", "x"), TraceContext{}) }()
	kittest.Eventually(t, "the entry to queue", func() bool { return r.c.queued() == 2 })
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, sidecar.ErrUnavailable) || !errors.Is(err, context.Canceled) {
			t.Errorf("Publish = %v, want unavailable, cancelled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a cancelled Publish kept waiting")
	}
	release()
	for id, err := range cs.wait() {
		if err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	// Only "a" was left to send: it went alone, and "cancelled" never left.
	if n := len(r.fake.Publishes()); n != 2 || len(r.fake.BulkPublishes()) != 0 {
		t.Errorf("single publishes = %d, bulk = %d; want 2 (first, a) and 0", n, len(r.fake.BulkPublishes()))
	}
}

func TestCloseDrains(t *testing.T) {
	r := newRig(t, Options{MaxBatch: 100, MaxInFlight: 1})
	var cs calls
	release := r.queueBehindHeld(t, &cs, ids(5)...)
	closed := make(chan struct{})
	go func() { r.c.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned while a publish was in flight and five were queued")
	case <-time.After(50 * time.Millisecond):
	}
	release()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return after the sidecar answered")
	}
	for id, err := range cs.wait() {
		if err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	if got := len(r.fake.BulkPublishes()); got != 1 {
		t.Errorf("bulk publishes = %d, want the queued five sent in one before Close returned", got)
	}
	// After Close, a publish goes alone.
	if err := r.c.Publish(context.Background(), NewTaskCreated("after", "x"), TraceContext{}); err != nil {
		t.Fatal(err)
	}
	if last := r.fake.Publishes()[len(r.fake.Publishes())-1]; last.Query.Get("metadata.cloudevent.id") != "after" {
		t.Errorf("the publish after Close was not sent alone")
	}
}
