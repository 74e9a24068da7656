// Package metrics holds the publisher's Prometheus metrics on a private
// registry, so only what is defined here (plus the Go and process collectors)
// is exported, on the ops port.
package metrics

import (
	"maps"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	kitmetrics "github.com/taskevents/taskevents/kit/metrics"
)

// Metrics is safe for concurrent use.
type Metrics struct {
	Registry *prometheus.Registry

	requests    *prometheus.CounterVec
	requestTime *prometheus.HistogramVec
	publishTime *prometheus.HistogramVec
	attempts    *prometheus.CounterVec
	retries     prometheus.Counter
	published   prometheus.Counter
	unavailable prometheus.Counter
	batch       prometheus.Histogram

	// The series each call touches, resolved once: WithLabelValues hashes
	// its labels on every call, which the request path should not pay.
	single, bulk publishSeries
	// routes maps (route, code) to its series; it is copied on write, so a
	// request only loads a pointer and reads a map. The keys are bounded:
	// routes are the mux's patterns and codes are the ones handlers write.
	routes  atomic.Pointer[map[routeCode]routeSeries]
	routeMu sync.Mutex
}

type publishSeries struct {
	took             prometheus.Observer
	accepted, failed prometheus.Counter
}

type routeCode struct {
	route string
	code  int
}

type routeSeries struct {
	count prometheus.Counter
	took  prometheus.Observer
}

// New registers every metric on a new registry.
func New() *Metrics {
	reg, f := kitmetrics.NewRegistry()
	m := &Metrics{
		Registry: reg,
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "taskevents_publisher_requests_total",
			Help: `Requests on the app port, by route (the matched path; "other" for none) and status code.`,
		}, []string{"route", "code"}),
		requestTime: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "taskevents_publisher_request_duration_seconds",
			Help:    "Time from a request's headers to its handler's return, by route.",
			Buckets: kitmetrics.LatencyBuckets,
		}, []string{"route"}),
		publishTime: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "taskevents_publisher_publish_duration_seconds",
			Help:    "Duration of one publish call to the sidecar, by mode (single or bulk).",
			Buckets: kitmetrics.LatencyBuckets,
		}, []string{"mode"}),
		attempts: f.NewCounterVec(prometheus.CounterOpts{
			Name: "taskevents_publisher_publish_attempts_total",
			Help: "Publish calls to the sidecar, by mode and result: accepted when daprd took every entry, failed otherwise.",
		}, []string{"mode", "result"}),
		retries: f.NewCounter(prometheus.CounterOpts{
			Name: "taskevents_publisher_publish_retries_total",
			Help: "Publish attempts after an event's first (a retry of a failed call or of a bulk's failed entry).",
		}),
		published: f.NewCounter(prometheus.CounterOpts{
			Name: "taskevents_publisher_events_published_total",
			Help: "Events daprd accepted, counted per entry (a bulk publish of 50 adds 50).",
		}),
		unavailable: f.NewCounter(prometheus.CounterOpts{
			Name: "taskevents_publisher_sidecar_unavailable_total",
			Help: "POST /tasks answered 503 because the sidecar or broker did not accept the event in time (queued requests that hit PUBLISH_TIMEOUT included).",
		}),
		batch: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "taskevents_publisher_bulk_batch_entries",
			Help:    "Entries per bulk publish call.",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000},
		}),
	}
	m.single = m.publishSeries("single")
	m.bulk = m.publishSeries("bulk")
	m.routes.Store(&map[routeCode]routeSeries{})
	// Dashboards query the accepted POST /tasks; its series exists (at 0)
	// before the first request.
	m.route("/tasks", http.StatusAccepted)
	return m
}

// publishSeries creates every series of one mode, so that queries find them
// at 0 from the start.
func (m *Metrics) publishSeries(mode string) publishSeries {
	return publishSeries{
		took:     m.publishTime.WithLabelValues(mode),
		accepted: m.attempts.WithLabelValues(mode, "accepted"),
		failed:   m.attempts.WithLabelValues(mode, "failed"),
	}
}

// Handler serves the registry in the text exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// Request records one answered request on the app port.
func (m *Metrics) Request(route string, code int, took time.Duration) {
	s := m.route(route, code)
	s.count.Inc()
	s.took.Observe(took.Seconds())
}

func (m *Metrics) route(route string, code int) routeSeries {
	k := routeCode{route, code}
	if s, ok := (*m.routes.Load())[k]; ok {
		return s
	}
	m.routeMu.Lock()
	defer m.routeMu.Unlock()
	old := *m.routes.Load()
	if s, ok := old[k]; ok {
		return s
	}
	s := routeSeries{
		count: m.requests.WithLabelValues(route, strconv.Itoa(code)),
		took:  m.requestTime.WithLabelValues(route),
	}
	next := maps.Clone(old)
	next[k] = s
	m.routes.Store(&next)
	return s
}

// PublishCall records one publish call to the sidecar carrying entries
// events, of which daprd accepted accepted.
func (m *Metrics) PublishCall(bulk bool, entries, accepted int, took time.Duration) {
	s := &m.single
	if bulk {
		s = &m.bulk
		m.batch.Observe(float64(entries))
	}
	s.took.Observe(took.Seconds())
	if accepted == entries {
		s.accepted.Inc()
	} else {
		s.failed.Inc()
	}
	if accepted > 0 {
		m.published.Add(float64(accepted))
	}
}

// PublishRetry records an attempt after an event's first.
func (m *Metrics) PublishRetry() { m.retries.Inc() }

// SidecarUnavailable records a 503 answered because the event was not
// accepted in time.
func (m *Metrics) SidecarUnavailable() { m.unavailable.Inc() }
