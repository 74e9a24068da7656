package metrics_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/taskevents/taskevents/kit/sidecar"
	"github.com/taskevents/taskevents/kit/sidecar/sidecartest"
	"github.com/taskevents/taskevents/publisher/internal/httpapi"
	"github.com/taskevents/taskevents/publisher/internal/metrics"
	"github.com/taskevents/taskevents/publisher/internal/publish"
)

// Metric names, as dashboards and alerts use them.
const (
	requests    = "taskevents_publisher_requests_total"
	requestTime = "taskevents_publisher_request_duration_seconds"
	publishTime = "taskevents_publisher_publish_duration_seconds"
	attempts    = "taskevents_publisher_publish_attempts_total"
	retries     = "taskevents_publisher_publish_retries_total"
	published   = "taskevents_publisher_events_published_total"
	unavailable = "taskevents_publisher_sidecar_unavailable_total"
	batch       = "taskevents_publisher_bulk_batch_entries"
)

// series is one expected value: a counter's, or a histogram's sample count.
type series struct {
	name   string
	labels []string
	want   float64
}

// zero lists the series that exist from the start; a case's expectations
// override them.
var zero = []series{
	{requests, []string{"route", "/tasks", "code", "202"}, 0},
	{requestTime, []string{"route", "/tasks"}, 0},
	{publishTime, []string{"mode", "single"}, 0},
	{publishTime, []string{"mode", "bulk"}, 0},
	{attempts, []string{"mode", "single", "result", "accepted"}, 0},
	{attempts, []string{"mode", "single", "result", "failed"}, 0},
	{attempts, []string{"mode", "bulk", "result", "accepted"}, 0},
	{attempts, []string{"mode", "bulk", "result", "failed"}, 0},
	{retries, nil, 0},
	{published, nil, 0},
	{unavailable, nil, 0},
	{batch, nil, 0},
}

func check(t *testing.T, m *metrics.Metrics, want []series) {
	t.Helper()
	key := func(s series) string { return s.name + strings.Join(s.labels, ",") }
	all := map[string]series{}
	var order []string
	for _, s := range append(append([]series(nil), zero...), want...) {
		if _, ok := all[key(s)]; !ok {
			order = append(order, key(s))
		}
		all[key(s)] = s
	}
	for _, k := range order {
		s := all[k]
		if got := value(t, m.Registry, s.name, s.labels...); got != s.want {
			t.Errorf("%s%v = %v, want %v", s.name, s.labels, got, s.want)
		}
	}
}

func TestNewExportsTheQueriedSeriesAtZero(t *testing.T) {
	check(t, metrics.New(), nil)
}

// quickRetries retries at once twice, then asks for a wait past any
// deadline: a publish that keeps failing makes exactly three attempts.
func quickRetries(n int) time.Duration {
	if n >= 3 {
		return time.Hour
	}
	return 0
}

// newClient returns a publisher whose publishes go to fake, counted by m;
// with maxInFlight 0 every publish goes alone, at once.
func newClient(t *testing.T, fake *sidecartest.Fake, m *metrics.Metrics, timeout time.Duration, maxInFlight int) *publish.Publisher {
	t.Helper()
	sc := sidecar.New(sidecar.Options{BaseURL: fake.URL})
	t.Cleanup(sc.Close)
	c := publish.New(sc.Topic("pubsub", "task-events"), publish.Options{PubSubName: "pubsub", Topic: "task-events",
		MaxBatch: 100, MaxInFlight: maxInFlight, PublishTimeout: timeout, Backoff: quickRetries, Logger: zerolog.Nop(), Observer: m})
	t.Cleanup(c.Close)
	return c
}

func TestRequestsThroughTheAPI(t *testing.T) {
	const jsonCT = "application/json"
	tests := []struct {
		name         string
		method, path string
		body         string
		script       []sidecartest.Response
		wantCode     int
		want         []series
	}{
		{
			name: "accepted", method: http.MethodPost, path: "/tasks", body: `{"title":"Write the report"}`,
			wantCode: http.StatusAccepted,
			want: []series{
				{requests, []string{"route", "/tasks", "code", "202"}, 1},
				{requestTime, []string{"route", "/tasks"}, 1},
				{attempts, []string{"mode", "single", "result", "accepted"}, 1},
				{publishTime, []string{"mode", "single"}, 1},
				{published, nil, 1},
			},
		},
		{
			name: "invalid body: 400, nothing published", method: http.MethodPost, path: "/tasks", body: `{"title":`,
			wantCode: http.StatusBadRequest,
			want: []series{
				{requests, []string{"route", "/tasks", "code", "400"}, 1},
				{requestTime, []string{"route", "/tasks"}, 1},
			},
		},
		{
			name: "broker down: three attempts, then 503", method: http.MethodPost, path: "/tasks", body: `{"title":"x"}`,
			script:   []sidecartest.Response{sidecartest.PublishFailed},
			wantCode: http.StatusServiceUnavailable,
			want: []series{
				{requests, []string{"route", "/tasks", "code", "503"}, 1},
				{requestTime, []string{"route", "/tasks"}, 1},
				{attempts, []string{"mode", "single", "result", "failed"}, 3},
				{publishTime, []string{"mode", "single"}, 3},
				{retries, nil, 2},
				{unavailable, nil, 1},
			},
		},
		{
			name: "a retry that succeeds", method: http.MethodPost, path: "/tasks", body: `{"title":"x"}`,
			script:   []sidecartest.Response{sidecartest.PublishFailed, sidecartest.Published},
			wantCode: http.StatusAccepted,
			want: []series{
				{requests, []string{"route", "/tasks", "code", "202"}, 1},
				{requestTime, []string{"route", "/tasks"}, 1},
				{attempts, []string{"mode", "single", "result", "failed"}, 1},
				{attempts, []string{"mode", "single", "result", "accepted"}, 1},
				{publishTime, []string{"mode", "single"}, 2},
				{retries, nil, 1},
				{published, nil, 1},
			},
		},
		{
			name: "refused by the sidecar: 502, not counted as unavailable", method: http.MethodPost, path: "/tasks",
			body: `{"title":"x"}`, script: []sidecartest.Response{sidecartest.NotFound}, wantCode: http.StatusBadGateway,
			want: []series{
				{requests, []string{"route", "/tasks", "code", "502"}, 1},
				{requestTime, []string{"route", "/tasks"}, 1},
				{attempts, []string{"mode", "single", "result", "failed"}, 1},
				{publishTime, []string{"mode", "single"}, 1},
			},
		},
		{
			name: "wrong method on a route", method: http.MethodGet, path: "/tasks", wantCode: http.StatusMethodNotAllowed,
			want: []series{
				{requests, []string{"route", "/tasks", "code", "405"}, 1},
				{requestTime, []string{"route", "/tasks"}, 1},
			},
		},
		{
			name: "an unknown path is other, never the path itself", method: http.MethodGet, path: "/tasks/secret-id",
			wantCode: http.StatusNotFound,
			want: []series{
				{requests, []string{"route", "other", "code", "404"}, 1},
				{requestTime, []string{"route", "other"}, 1},
			},
		},
		{
			name: "probes on the app port", method: http.MethodGet, path: "/healthz", wantCode: http.StatusOK,
			want: []series{{requests, []string{"route", "/healthz", "code", "200"}, 1}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := sidecartest.New(t)
			if tt.script != nil {
				fake.Script(tt.script...)
			}
			m := metrics.New()
			h := httpapi.New(httpapi.Deps{Publisher: newClient(t, fake, m, 2*time.Second, 0), Logger: zerolog.Nop(),
				MaxTitleLength: 200, Metrics: m})
			req := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
			req.Header.Set("Content-Type", jsonCT)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.wantCode {
				t.Fatalf("status = %d, want %d: %s", rec.Code, tt.wantCode, rec.Body)
			}
			check(t, m, tt.want)
			if body := exposition(t, m); strings.Contains(body, "secret-id") {
				t.Errorf("a request path reached a label:\n%s", body)
			}
		})
	}
}

// A handler that panics is answered 500, and counted as such.
func TestPanicIsCounted(t *testing.T) {
	m := metrics.New()
	h := httpapi.New(httpapi.Deps{Publisher: panicking{}, Logger: zerolog.Nop(), MaxTitleLength: 200, Metrics: m})
	req := httptest.NewRequest(http.MethodPost, "/tasks", strings.NewReader(`{"title":"x"}`))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status = %d", rec.Code)
	}
	check(t, m, []series{
		{requests, []string{"route", "/tasks", "code", "500"}, 1},
		{requestTime, []string{"route", "/tasks"}, 1},
	})
}

type panicking struct{}

func (panicking) Publish(context.Context, publish.TaskCreated, publish.TraceContext) error {
	panic("boom")
}

// A request still queued behind a publish in flight when its deadline runs
// out makes no publish call of its own; the API answers its error with 503
// and counts it as sidecar unavailable.
func TestQueuedPastItsDeadlineIs503(t *testing.T) {
	fake := sidecartest.New(t)
	m := metrics.New()
	co := newClient(t, fake, m, 5*time.Second, 1)

	release := fake.Hold()
	defer release()
	var wg sync.WaitGroup
	var first error
	wg.Go(func() {
		first = co.Publish(context.Background(), publish.NewTaskCreated("first", "x"), publish.TraceContext{})
	})
	deadline := time.Now().Add(5 * time.Second)
	for len(fake.Publishes()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the first publish never reached the sidecar")
		}
		time.Sleep(time.Millisecond)
	}
	// The only sender is held by the first publish: this one queues, and
	// its deadline passes in the queue.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	queued := co.Publish(ctx, publish.NewTaskCreated("late", "x"), publish.TraceContext{})
	var ue *sidecar.UnavailableError
	if !errors.As(queued, &ue) || ue.Attempts != 0 {
		t.Fatalf("queued publish = %v, want unavailable after 0 attempts", queued)
	}
	release()
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}

	h := httpapi.New(httpapi.Deps{Publisher: failing{queued}, Logger: zerolog.Nop(), MaxTitleLength: 200, Metrics: m})
	req := httptest.NewRequest(http.MethodPost, "/tasks", strings.NewReader(`{"title":"x"}`))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status = %d, want 503", rec.Code)
	}
	check(t, m, []series{
		{requests, []string{"route", "/tasks", "code", "503"}, 1},
		{requestTime, []string{"route", "/tasks"}, 1},
		{attempts, []string{"mode", "single", "result", "accepted"}, 1}, // the first; the late one made none
		{publishTime, []string{"mode", "single"}, 1},
		{published, nil, 1},
		{unavailable, nil, 1},
	})
}

// failing answers every publish with err.
type failing struct{ err error }

func (f failing) Publish(context.Context, publish.TaskCreated, publish.TraceContext) error {
	return f.err
}

// /metrics is on the ops handler, in the text format, and not on the app
// port's; the ops port's own requests are not counted as API requests.
func TestMetricsOnTheOpsHandlerOnly(t *testing.T) {
	m := metrics.New()
	ops := httptest.NewServer(httpapi.Ops(m.Handler(), nil))
	t.Cleanup(ops.Close)
	app := httptest.NewServer(httpapi.New(httpapi.Deps{Publisher: panicking{}, Logger: zerolog.Nop(), Metrics: m}))
	t.Cleanup(app.Close)

	for _, tt := range []struct {
		url      string
		wantCode int
		wantCT   string
		contains string
	}{
		{ops.URL + "/metrics", 200, "text/plain; version=0.0.4", "taskevents_publisher_requests_total{code=\"202\",route=\"/tasks\"} 0"},
		{ops.URL + "/healthz", 200, "application/json", `"ok"`},
		{ops.URL + "/readyz", 200, "application/json", `"ready"`},
		{ops.URL + "/tasks", 404, "application/problem+json", "ops port"},
		{app.URL + "/metrics", 404, "application/problem+json", "No route"},
	} {
		resp, err := http.Get(tt.url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != tt.wantCode || !strings.HasPrefix(resp.Header.Get("Content-Type"), tt.wantCT) ||
			!strings.Contains(string(body), tt.contains) {
			t.Errorf("GET %s = %d %q, want %d %q containing %q:\n%.400s", tt.url, resp.StatusCode,
				resp.Header.Get("Content-Type"), tt.wantCode, tt.wantCT, tt.contains, body)
		}
	}
	resp, err := http.Post(ops.URL+"/metrics", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics = %d, want 405", resp.StatusCode)
	}
	// The ops port's scrapes are not API requests; only the app port's
	// GET /metrics (404, other) is.
	check(t, m, []series{{requests, []string{"route", "other", "code", "404"}, 1}, {requestTime, []string{"route", "other"}, 1}})
	for _, route := range []string{"/healthz", "/readyz", "/metrics"} {
		if strings.Contains(exposition(t, m), `route="`+route+`"`) {
			t.Errorf("the ops port's %s was counted as an API request", route)
		}
	}
}

// While draining the ops port's /readyz answers 503, as the app port's does.
func TestOpsReadyzFollowsReadiness(t *testing.T) {
	ops := httpapi.Ops(metrics.New().Handler(), func() (bool, string) { return false, "draining" })
	rec := httptest.NewRecorder()
	ops.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "draining") {
		t.Errorf("GET /readyz = %d %s, want 503 draining", rec.Code, rec.Body)
	}
}

func exposition(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics = %d", rec.Code)
	}
	return rec.Body.String()
}

// Concurrent requests on new (route, code) pairs race to create their
// series; every count must land.
func TestConcurrentRoutes(t *testing.T) {
	m := metrics.New()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 100 {
				m.Request("/tasks", 400+i, time.Millisecond)
				m.Request("/tasks", http.StatusAccepted, time.Millisecond)
			}
		})
	}
	wg.Wait()
	if got := value(t, m.Registry, requests, "route", "/tasks", "code", "202"); got != 800 {
		t.Errorf("202s = %v, want 800", got)
	}
	for i := range 8 {
		if got := value(t, m.Registry, requests, "route", "/tasks", "code", strconv.Itoa(400+i)); got != 100 {
			t.Errorf("code %d = %v, want 100", 400+i, got)
		}
	}
	if got := value(t, m.Registry, requestTime, "route", "/tasks"); got != 1600 {
		t.Errorf("durations = %v, want 1600", got)
	}
}

func BenchmarkRequest(b *testing.B) {
	m := metrics.New()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Request("/tasks", http.StatusAccepted, time.Millisecond)
		}
	})
}

func BenchmarkPublishCall(b *testing.B) {
	m := metrics.New()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.PublishCall(false, 1, 1, time.Millisecond)
		}
	})
}

// BenchmarkCreateTaskWithMetrics is httpapi's BenchmarkCreateTask with the
// real metrics behind the middleware: the difference is what counting costs.
func BenchmarkCreateTaskWithMetrics(b *testing.B) {
	h := httpapi.New(httpapi.Deps{Publisher: failing{}, Logger: zerolog.Nop(), MaxTitleLength: 200, Metrics: metrics.New()})
	body := []byte(`{"title":"Benchmark the publisher"}`)
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/tasks", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusAccepted {
			b.Fatalf("status = %d: %s", rec.Code, rec.Body)
		}
	}
}
