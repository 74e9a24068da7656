// Package metrics holds the worker's Prometheus metrics on a private
// registry, so only what is defined here (plus the Go and process collectors)
// is exported.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	kitmetrics "github.com/taskevents/taskevents/kit/metrics"
)

// Outcomes, exactly as answered to daprd.
const (
	OutcomeSuccess = "SUCCESS"
	OutcomeRetry   = "RETRY"
	OutcomeDrop    = "DROP"
)

// Metrics is safe for concurrent use.
type Metrics struct {
	Registry *prometheus.Registry

	events       *prometheus.CounterVec
	handling     *prometheus.HistogramVec
	batches      prometheus.Histogram
	duplicates   prometheus.Counter
	deadLetters  prometheus.Counter
	unauthorized prometheus.Counter
}

// New registers every metric on a new registry.
func New() *Metrics {
	reg, f := kitmetrics.NewRegistry()
	m := &Metrics{
		Registry: reg,
		events: f.NewCounterVec(prometheus.CounterOpts{
			Name: "taskevents_worker_events_total",
			Help: "Deliveries on the event route, by the status answered to daprd.",
		}, []string{"outcome"}),
		handling: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "taskevents_worker_event_handling_seconds",
			Help:    "Time from receiving a delivery to answering it, by the status answered.",
			Buckets: kitmetrics.LatencyBuckets,
		}, []string{"outcome"}),
		batches: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "taskevents_worker_bulk_batch_entries",
			Help:    "Entries per bulk delivery (subscriptions with bulkSubscribe).",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000},
		}),
		duplicates: f.NewCounter(prometheus.CounterOpts{
			Name: "taskevents_worker_duplicates_total",
			Help: "Deliveries of an event that was already handled or is being handled; the handler was not called.",
		}),
		deadLetters: f.NewCounter(prometheus.CounterOpts{
			Name: "taskevents_worker_dead_letters_total",
			Help: "Messages received from the dead-letter topic.",
		}),
		unauthorized: f.NewCounter(prometheus.CounterOpts{
			Name: "taskevents_worker_unauthorized_total",
			Help: "Requests to /events/* rejected for a missing or wrong dapr-api-token.",
		}),
	}
	// Export every outcome from the start, so a query for SUCCESS finds a
	// series (at 0) before the first event.
	for _, o := range []string{OutcomeSuccess, OutcomeRetry, OutcomeDrop} {
		m.events.WithLabelValues(o)
		m.handling.WithLabelValues(o)
	}
	return m
}

// Delivery records one answered delivery.
func (m *Metrics) Delivery(outcome string, took time.Duration) {
	m.events.WithLabelValues(outcome).Inc()
	m.handling.WithLabelValues(outcome).Observe(took.Seconds())
}

// Batch records one bulk delivery of n entries; each entry is also
// recorded by Delivery.
func (m *Metrics) Batch(n int) { m.batches.Observe(float64(n)) }

// Duplicate records a delivery answered from the dedupe store.
func (m *Metrics) Duplicate() { m.duplicates.Inc() }

// DeadLetter records a message from the dead-letter topic.
func (m *Metrics) DeadLetter() { m.deadLetters.Inc() }

// Unauthorized records a request rejected by the token check.
func (m *Metrics) Unauthorized() { m.unauthorized.Inc() }

// TrackDedupeEntries exports the size of the dedupe store.
func (m *Metrics) TrackDedupeEntries(size func() int) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "taskevents_worker_dedupe_entries",
		Help: "Event keys held by the dedupe store (handled and in flight).",
	}, func() float64 { return float64(size()) }))
}
