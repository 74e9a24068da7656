package server

import (
	"context"
	"encoding/json"
	"mime"
	"net/http"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskevents/taskevents/kit/tracing"
	"github.com/taskevents/taskevents/worker/internal/bulk"
	"github.com/taskevents/taskevents/worker/internal/metrics"
)

// batchEntry is what a log line says about the batch an event came in.
type batchEntry struct {
	batchID string
	entryID string
	size    int
}

func (b *batchEntry) log(e *zerolog.Event) {
	if b == nil {
		return
	}
	strIf(e, "batch_id", b.batchID)
	strIf(e, "entry_id", b.entryID)
	e.Int("batch_size", b.size)
}

// mayBeBatch reports whether a request may be a bulk delivery. daprd sends
// those as application/json and single events as
// application/cloudevents+json, so single deliveries from daprd never pay
// for the check; bulk.Parse has the last word.
func mayBeBatch(h http.Header, body []byte) bool {
	if h.Get("Ce-Specversion") != "" {
		return false // binary mode: the body is the event's data
	}
	ct, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	return ct != "application/cloudevents+json" && bulk.IsBatch(body)
}

// emptyAnswer leaves every entry out, which daprd reads as RETRY for all.
var emptyAnswer = []byte(`{"statuses":[]}` + "\n")

// batch answers a bulk delivery (a subscription with bulkSubscribe): each
// entry goes through deliver, exactly as a single delivery does, and gets
// its own status.
//
// Entries run BULK_CONCURRENCY at a time: each costs three round trips to
// the state store, and daprd sends the next batch only once this one is
// answered, so a batch handled one entry after the other would bound the
// drain rate by the sum of those round trips.
func (s *Deps) batch(w http.ResponseWriter, r *http.Request, b bulk.Batch, err error, start time.Time) {
	ctx, span := r.Context(), trace.Span(nil)
	if s.Tracing.Enabled() {
		// Its entries belong to traces of their own; each links to this span.
		ctx, span = s.serverSpan(r, "/events/todo", start, trace.WithAttributes(semconv.MessagingBatchMessageCount(len(b.Entries))))
		span.SetName(spanBatch)
		span.SetAttributes(attribute.String("dapr.bulk.id", b.ID))
		defer tracing.EndServer(span, http.StatusOK)
	}
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		// Not even the entry ids can be read: nothing can be answered.
		if span != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		s.Logger.Warn().Str("outcome", metrics.OutcomeRetry).Str("reason", err.Error()).Msg(MsgRejected)
		_, _ = w.Write(emptyAnswer)
		return
	}
	n := len(b.Entries)
	s.Metrics.Batch(n)
	// The entry's own content type decides structured or binary parsing;
	// daprd fills in application/cloudevents+json when the broker gave none.
	headers := map[string]http.Header{}
	header := func(ct string) http.Header {
		if ct == "" {
			ct = "application/cloudevents+json"
		}
		if _, ok := headers[ct]; !ok {
			headers[ct] = http.Header{"Content-Type": {ct}}
			if b.PubsubName != "" {
				headers[ct].Set("pubsubname", b.PubsubName)
			}
		}
		return headers[ct]
	}

	statuses := make([]bulk.Status, n)
	sem := make(chan struct{}, s.BulkConcurrency)
	var wg sync.WaitGroup
	for i, e := range b.Entries {
		info := &batchEntry{batchID: b.ID, entryID: e.EntryID, size: n}
		d := delivery{entry: info}
		switch {
		case e.Err != nil:
			// Answerable only if its id could be read; daprd then dead-letters it.
			d.rejected, d.outcome, d.reason = true, metrics.OutcomeDrop, e.Err.Error()
		case !acquire(ctx, sem):
			// daprd hung up (its delivery timeout passed) or the worker is
			// stopping: entries not started are left for the redelivery.
			d.outcome, d.reason = metrics.OutcomeRetry, "delivery canceled before this entry was started"
		default:
			h := header(e.ContentType)
			wg.Go(func() {
				defer func() { <-sem }()
				statuses[i] = bulk.Status{EntryID: e.EntryID, Status: s.deliver(ctx, r, delivery{start: time.Now(), entry: info}, h, e.Event)}
			})
			continue
		}
		d.start = time.Now()
		statuses[i] = bulk.Status{EntryID: e.EntryID, Status: s.deliver(ctx, r, d, nil, nil)}
	}
	wg.Wait()

	answer := bulk.Answer{Statuses: statuses[:0]}
	for _, st := range statuses {
		if st.EntryID != "" {
			answer.Statuses = append(answer.Statuses, st)
		}
	}
	body, err := json.Marshal(answer)
	if err != nil {
		body = emptyAnswer
	}
	_, _ = w.Write(body)
}

// acquire takes a slot of sem, unless ctx ends first.
func acquire(ctx context.Context, sem chan struct{}) bool {
	if ctx.Err() != nil {
		return false
	}
	select {
	case sem <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}
