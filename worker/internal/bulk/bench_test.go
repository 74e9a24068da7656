package bulk

import (
	"fmt"
	"strings"
	"testing"

	"github.com/taskevents/taskevents/worker/internal/taskevent/eventtest"
)

// BenchmarkParse100 reads a batch of 100 daprd-shaped entries (the envelope only; each
// entry's event is parsed by taskevent.Parse, as a single delivery is).
func BenchmarkParse100(b *testing.B) {
	parts := make([]string, 100)
	for i := range parts {
		parts[i] = fmt.Sprintf(`{"contentType":"application/cloudevents+json","entryId":"e-%03d","event":%s,"metadata":null}`, i, eventtest.DaprdEnvelope)
	}
	body := []byte(`{"entries":[` + strings.Join(parts, ",") + `],"id":"b","metadata":{"pubsubName":"pubsub"},"pubsubname":"pubsub","topic":"task-events","type":"com.dapr.event.sent.bulk"}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		batch, err := Parse(body)
		if err != nil || len(batch.Entries) != 100 {
			b.Fatal(err)
		}
	}
}
