package publish

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/taskevents/taskevents/kit/sidecar"
	"github.com/taskevents/taskevents/kit/sidecar/sidecartest"
	"github.com/taskevents/taskevents/publisher/internal/metrics"
)

// Series names, as dashboards and alerts query them; a histogram's are its
// sample count and sum.
const (
	publishTime = "taskevents_publisher_publish_duration_seconds_count"
	attempts    = "taskevents_publisher_publish_attempts_total"
	retries     = "taskevents_publisher_publish_retries_total"
	published   = "taskevents_publisher_events_published_total"
	batchSize   = "taskevents_publisher_bulk_batch_entries_count"
	batchSum    = "taskevents_publisher_bulk_batch_entries_sum"
)

// series is one expected line of /metrics; labels are name, value pairs in
// the exposition's (alphabetical) order.
type series struct {
	name   string
	labels []string
	want   float64
}

// checkSeries compares every publish series on /metrics, zero unless want
// says otherwise. A series that does not exist fails: a dashboard's query
// would find nothing either.
func checkSeries(t *testing.T, m *metrics.Metrics, want []series) {
	t.Helper()
	all := []series{
		{publishTime, []string{"mode", "single"}, 0},
		{publishTime, []string{"mode", "bulk"}, 0},
		{attempts, []string{"mode", "single", "result", "accepted"}, 0},
		{attempts, []string{"mode", "single", "result", "failed"}, 0},
		{attempts, []string{"mode", "bulk", "result", "accepted"}, 0},
		{attempts, []string{"mode", "bulk", "result", "failed"}, 0},
		{retries, nil, 0},
		{published, nil, 0},
		{batchSize, nil, 0},
		{batchSum, nil, 0},
	}
	for _, w := range want {
		for i, s := range all {
			if s.name == w.name && strings.Join(s.labels, ",") == strings.Join(w.labels, ",") {
				all[i] = w
			}
		}
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body := rec.Body.String()
	for _, s := range all {
		var labels []string
		for i := 0; i+1 < len(s.labels); i += 2 {
			labels = append(labels, fmt.Sprintf("%s=%q", s.labels[i], s.labels[i+1]))
		}
		line := s.name
		if labels != nil {
			line += "{" + strings.Join(labels, ",") + "}"
		}
		if line += fmt.Sprintf(" %v\n", s.want); !strings.Contains(body, "\n"+line) {
			var have []string
			for l := range strings.Lines(body) {
				if strings.HasPrefix(l, s.name) {
					have = append(have, l)
				}
			}
			t.Errorf("/metrics has no line %q; it has:\n%s", line, strings.Join(have, ""))
		}
	}
}

// observedRig is a publisher with one publish in flight at a time, counted
// by the real metrics, in front of a fake sidecar.
func observedRig(t *testing.T) (*Publisher, *sidecartest.Fake, *metrics.Metrics) {
	t.Helper()
	fake := sidecartest.New(t)
	m := metrics.New()
	sc := sidecar.New(sidecar.Options{BaseURL: fake.URL})
	t.Cleanup(sc.Close)
	c := New(sc.Topic("pubsub", "task-events"), Options{PubSubName: "pubsub", Topic: "task-events", MaxBatch: 100,
		MaxInFlight: 1, PublishTimeout: 2 * time.Second, Backoff: threeAttempts, Logger: zerolog.Nop(), Observer: m})
	t.Cleanup(c.Close)
	return c, fake, m
}

// A bulk publish whose broker refuses two of four entries: the call counts
// as one failed bulk attempt of 4 entries that published 2; each failed
// entry is then retried alone. The first publish, alone, that the four
// queued behind adds one accepted single call.
func TestBulkPartialFailureWithRetries(t *testing.T) {
	c, fake, m := observedRig(t)
	fake.ScriptBulk(func([]sidecartest.BulkEntry) sidecartest.Response { return sidecartest.FailEntries("1", "3") })
	// After the first: one retry fails, the next two are accepted (entry 1
	// or 3 fails once more; which one depends on which retries first).
	fake.Script(sidecartest.Published, sidecartest.PublishFailed, sidecartest.Published)
	var cs calls
	r := &rig{c: c, fake: fake}
	r.queueBehindHeld(t, &cs, "a", "b", "c", "d")()
	for id, err := range cs.wait() {
		if err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	checkSeries(t, m, []series{
		{attempts, []string{"mode", "bulk", "result", "failed"}, 1},
		{publishTime, []string{"mode", "bulk"}, 1},
		{batchSize, nil, 1},
		{attempts, []string{"mode", "single", "result", "failed"}, 1},
		{attempts, []string{"mode", "single", "result", "accepted"}, 1 + 2},
		{publishTime, []string{"mode", "single"}, 1 + 3},
		{retries, nil, 3},
		{published, nil, 1 + 4},
		{batchSum, nil, 4},
	})
}

func TestBulkAccepted(t *testing.T) {
	c, fake, m := observedRig(t)
	var cs calls
	r := &rig{c: c, fake: fake}
	var ids []string
	for i := range 50 {
		ids = append(ids, string(rune('a'+i%26))+strings.Repeat("x", i))
	}
	r.queueBehindHeld(t, &cs, ids...)()
	for id, err := range cs.wait() {
		if err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	checkSeries(t, m, []series{
		{attempts, []string{"mode", "bulk", "result", "accepted"}, 1},
		{publishTime, []string{"mode", "bulk"}, 1},
		{batchSize, nil, 1},
		{batchSum, nil, 50},
		{attempts, []string{"mode", "single", "result", "accepted"}, 1}, // the first
		{publishTime, []string{"mode", "single"}, 1},
		{published, nil, 1 + 50},
	})
}
