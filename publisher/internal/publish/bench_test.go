package coalesce

import (
	"context"
	"testing"
	"time"

	"github.com/taskevents/taskevents/publisher/internal/sidecar"
)

// instantSender accepts everything at once, after a sidecar round trip's
// worth of waiting, so the benchmark measures the coalescer's own cost.
type instantSender struct{ latency time.Duration }

func (s instantSender) PublishOne(context.Context, sidecar.Entry) error {
	time.Sleep(s.latency)
	return nil
}

func (s instantSender) PublishBulk(_ context.Context, es []sidecar.Entry) []error {
	time.Sleep(s.latency)
	return make([]error, len(es))
}

func (instantSender) Finish(_ context.Context, _ sidecar.Entry, o sidecar.Outcome) error {
	return o.Err
}

func BenchmarkCoalescer(b *testing.B) {
	for _, bc := range []struct {
		name    string
		latency time.Duration
	}{{"instant", 0}, {"sleeping-sender", 200 * time.Microsecond}} {
		b.Run(bc.name, func(b *testing.B) {
			c := New(instantSender{bc.latency}, Options{MaxBatch: 100, MaxInFlight: 4, PublishTimeout: 5 * time.Second})
			defer c.Close()
			ev := sidecar.NewTaskCreated("3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b", "Benchmark the publisher")
			b.ReportAllocs()
			b.SetParallelism(8) // 8 goroutines per CPU: requests that queue up
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := c.Publish(context.Background(), ev, sidecar.TraceContext{}); err != nil {
						b.Error(err)
					}
				}
			})
		})
	}
}
