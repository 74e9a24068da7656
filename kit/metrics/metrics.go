// Package metrics is the start of each app's metrics: a private registry,
// so that only what the app defines (plus the Go and process collectors) is
// exported on its ops port.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// LatencyBuckets span a loopback call (well under 1 ms) to one that retries
// for seconds (PUBLISH_TIMEOUT, HANDLER_TIMEOUT).
var LatencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// NewRegistry returns a registry holding the Go and process collectors,
// and the factory that registers an app's own metrics on it.
func NewRegistry() (*prometheus.Registry, promauto.Factory) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg, promauto.With(reg)
}
