package publish

import (
	"context"
	"testing"
	"time"

	"github.com/taskevents/taskevents/kit/sidecar"
)

// instantTopic accepts everything at once, after a sidecar round trip's
// worth of waiting, so the benchmark measures the publisher's own cost.
type instantTopic struct{ latency time.Duration }

func (s instantTopic) Publish(context.Context, sidecar.Message) error {
	time.Sleep(s.latency)
	return nil
}

func (s instantTopic) PublishBulk(_ context.Context, ms []sidecar.Message) []error {
	time.Sleep(s.latency)
	return make([]error, len(ms))
}

func BenchmarkCoalescer(b *testing.B) {
	for _, bc := range []struct {
		name    string
		latency time.Duration
	}{{"instant", 0}, {"sleeping-sender", 200 * time.Microsecond}} {
		b.Run(bc.name, func(b *testing.B) {
			c := New(instantTopic{bc.latency}, Options{MaxBatch: 100, MaxInFlight: 4, PublishTimeout: 5 * time.Second})
			defer c.Close()
			ev := NewTaskCreated("3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b", "Benchmark the publisher")
			b.ReportAllocs()
			b.SetParallelism(8) // 8 goroutines per CPU: requests that queue up
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := c.Publish(context.Background(), ev, TraceContext{}); err != nil {
						b.Error(err)
					}
				}
			})
		})
	}
}

func BenchmarkEncodeEvent(b *testing.B) {
	ev := NewTaskCreated("3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b", "Benchmark the publisher")
	b.ReportAllocs()
	for b.Loop() {
		_ = appendEvent(make([]byte, 0, 64+len(ev.TaskID)+len(ev.Title)), ev)
	}
}
