package metrics_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// value is the value of the series of name whose labels include labels
// (name, value pairs): a counter's or gauge's value, a histogram's sample
// count. A series that does not exist fails the test: a dashboard's query
// would find nothing either.
func value(t testing.TB, reg prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	m := find(t, reg, name, labels)
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	t.Fatalf("%s%v is neither a counter, a gauge nor a histogram", name, labels)
	return 0
}

func find(t testing.TB, reg prometheus.Gatherer, name string, labels []string) *dto.Metric {
	t.Helper()
	if len(labels)%2 != 0 {
		t.Fatalf("labels %v are not name, value pairs", labels)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			match := f.GetName() == name
			for i := 0; match && i < len(labels); i += 2 {
				v, ok := have[labels[i]]
				match = ok && v == labels[i+1]
			}
			if match {
				return m
			}
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return nil
}
