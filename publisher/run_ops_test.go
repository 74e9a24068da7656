package main

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/taskevents/taskevents/kit/kittest"
	"github.com/taskevents/taskevents/kit/sidecar/sidecartest"
)

// scrape reads a text exposition into series ("name{labels}", as written)
// and values.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	code, body := kittest.Get(url)
	if code != http.StatusOK {
		t.Fatalf("GET %s = %d %s", url, code, body)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("exposition line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// The ops port serves /metrics (and the probes), the app port does not, and
// the ops port drains with the rest.
func TestRunServesMetricsOnTheOpsPort(t *testing.T) {
	fake := sidecartest.New(t)
	a := startRun(t, fake, "IDEMPOTENCY_STORE=memory", "DRAIN_DELAY=300ms")
	if a.opsURL == a.url || a.opsURL == "http://" {
		t.Fatalf("listening line: addr %s, ops_addr %s; want two addresses", a.url, a.opsURL)
	}
	kittest.Eventually(t, "the ops port's /readyz 200", func() bool { c, _ := kittest.Get(a.opsURL + "/readyz"); return c == 200 })
	if code, _ := kittest.Get(a.opsURL + "/healthz"); code != 200 {
		t.Errorf("ops /healthz = %d", code)
	}
	before := scrape(t, a.opsURL+"/metrics")
	for _, s := range []string{
		`taskevents_publisher_requests_total{code="202",route="/tasks"}`,
		`taskevents_publisher_publish_attempts_total{mode="bulk",result="failed"}`,
		`taskevents_publisher_events_published_total`,
		`go_goroutines`,
		`process_resident_memory_bytes`,
	} {
		if v, ok := before[s]; !ok || (strings.HasPrefix(s, "taskevents_") && v != 0) {
			t.Errorf("before any request: %s = %v (present %v), want present at 0", s, v, ok)
		}
	}

	resp, err := http.Post(a.url+"/tasks", "application/json", strings.NewReader(`{"title":"counted"}`))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /tasks = %d", resp.StatusCode)
	}
	if code, body := kittest.Get(a.url + "/metrics"); code != http.StatusNotFound || strings.Contains(body, "taskevents_") {
		t.Errorf("the app port's GET /metrics = %d %.200s, want 404 without metrics", code, body)
	}
	after := scrape(t, a.opsURL+"/metrics")
	for s, want := range map[string]float64{
		`taskevents_publisher_requests_total{code="202",route="/tasks"}`:                 1,
		`taskevents_publisher_requests_total{code="404",route="other"}`:                  1,
		`taskevents_publisher_events_published_total`:                                    1,
		`taskevents_publisher_publish_attempts_total{mode="single",result="accepted"}`:   1,
		`taskevents_publisher_publish_duration_seconds_count{mode="single"}`:             1,
		`taskevents_publisher_request_duration_seconds_count{route="/tasks"}`:            1,
		`taskevents_publisher_sidecar_unavailable_total`:                                 0,
		`taskevents_publisher_publish_retries_total`:                                     0,
		`taskevents_publisher_bulk_batch_entries_count`:                                  0,
		`taskevents_publisher_publish_attempts_total{mode="single",result="failed"}`:     0,
		`taskevents_publisher_publish_attempts_total{mode="bulk",result="accepted"}`:     0,
		`taskevents_publisher_request_duration_seconds_bucket{route="/tasks",le="+Inf"}`: 1,
	} {
		if got, ok := after[s]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", s, got, ok, want)
		}
	}
	for s := range after {
		if strings.Contains(s, `route="/readyz"`) || strings.Contains(s, `route="/metrics"`) {
			t.Errorf("the ops port's own requests were counted: %s", s)
		}
	}

	a.cancel()
	kittest.Eventually(t, "the ops port's /readyz draining", func() bool {
		c, b := kittest.Get(a.opsURL + "/readyz")
		return c == 503 && strings.Contains(b, "draining")
	})
	if err := a.wait(t); err != nil {
		t.Fatalf("run = %v", err)
	}
	if code, _ := kittest.Get(a.opsURL + "/healthz"); code != 0 {
		t.Errorf("the ops port still answers (%d) after run returned", code)
	}
}

// Coalesced bursts: every event is counted once, however it went out, and
// each bulk publish is one attempt and one batch observation.
func TestRunCountsCoalescedPublishes(t *testing.T) {
	fake := sidecartest.New(t)
	a := startRun(t, fake, "IDEMPOTENCY_STORE=memory")
	const n = 40
	for i, s := range burst(t, a, fake, n) {
		if s != http.StatusAccepted {
			t.Fatalf("request %d: %d", i, s)
		}
	}
	got := scrape(t, a.opsURL+"/metrics")
	bulks := float64(len(fake.BulkPublishes()))
	for s, want := range map[string]float64{
		`taskevents_publisher_events_published_total`:                                  n,
		`taskevents_publisher_requests_total{code="202",route="/tasks"}`:               n,
		`taskevents_publisher_publish_attempts_total{mode="single",result="accepted"}`: float64(len(fake.Publishes())),
		`taskevents_publisher_publish_attempts_total{mode="bulk",result="accepted"}`:   bulks,
		`taskevents_publisher_bulk_batch_entries_count`:                                bulks,
		`taskevents_publisher_bulk_batch_entries_sum`:                                  n - float64(len(fake.Publishes())),
	} {
		if got[s] != want {
			t.Errorf("%s = %v, want %v", s, got[s], want)
		}
	}
	if bulks == 0 {
		t.Error("the burst made no bulk publish; the test checks nothing about bulk")
	}
}
