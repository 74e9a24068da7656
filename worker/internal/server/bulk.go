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

// handleBatch answers a bulk delivery (a subscription with bulkSubscribe).
// Each entry goes through exactly what a single delivery does (parse,
// claim, handler, record, log line, metrics) and gets its own status.
//
// Entries run BULK_CONCURRENCY at a time: each costs three round trips to
// the state store, and daprd sends the next batch only once this one is
// answered, so a batch handled one entry after the other would bound the
// drain rate by the sum of those round trips.
func (s *Server) handleBatch(ctx context.Context, w http.ResponseWriter, r *http.Request, b bulk.Batch, err error, start time.Time) {
	ctx, span := s.startBatch(ctx, r, start, len(b.Entries))
	if span != nil {
		defer tracing.EndServer(span, http.StatusOK)
		span.SetAttributes(attribute.String("dapr.bulk.id", b.ID))
	}
	if err != nil {
		// Not even the entry ids can be read: nothing can be answered.
		if span != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		s.log.Warn().Str("outcome", metrics.OutcomeRetry).Str("reason", err.Error()).Msg(MsgRejected)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(emptyAnswer)
		return
	}
	n := len(b.Entries)
	s.metrics.Batch(n)
	statuses := make([]bulk.Status, n)
	// The entry's own content type decides structured or binary parsing;
	// daprd fills in application/cloudevents+json when the broker gave none.
	headers := map[string]http.Header{}
	header := func(ct string) http.Header {
		if ct == "" {
			ct = "application/cloudevents+json"
		}
		h, ok := headers[ct]
		if !ok {
			h = http.Header{"Content-Type": {ct}}
			if b.PubsubName != "" {
				h.Set("pubsubname", b.PubsubName)
			}
			headers[ct] = h
		}
		return h
	}

	sem := make(chan struct{}, s.bulkConcurrency)
	var wg sync.WaitGroup
	for i, e := range b.Entries {
		info := &batchEntry{batchID: b.ID, entryID: e.EntryID, size: n}
		if e.Err != nil {
			// Answerable only if its id could be read; daprd then dead-letters it.
			d := delivery{rejected: true, outcome: metrics.OutcomeDrop, reason: e.Err.Error(), entry: info}
			if span != nil {
				d.span = s.startEntry(ctx, r, time.Now(), "", info)
			}
			s.finish(d, 0)
			if e.EntryID != "" {
				statuses[i] = bulk.Status{EntryID: e.EntryID, Status: d.outcome}
			}
			continue
		}
		h := header(e.ContentType)
		if !acquire(ctx, sem) {
			// daprd hung up (its delivery timeout passed) or the worker is
			// stopping: entries not started are left for the redelivery.
			d := delivery{outcome: metrics.OutcomeRetry, reason: "delivery canceled before this entry was started", entry: info}
			if span != nil {
				d.span = s.startEntry(ctx, r, time.Now(), "", info)
			}
			s.finish(d, 0)
			statuses[i] = bulk.Status{EntryID: e.EntryID, Status: d.outcome}
			continue
		}
		wg.Go(func() {
			defer func() { <-sem }()
			start := time.Now()
			d := s.deliverEntry(ctx, r, h, e.Event, info, span != nil)
			s.finish(d, time.Since(start))
			statuses[i] = bulk.Status{EntryID: e.EntryID, Status: d.outcome}
		})
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
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
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

// deliverEntry is deliverOne for an entry of a bulk delivery. With traced,
// the entry gets a span of its own once its CloudEvent is parsed, when its
// traceparent is known.
func (s *Server) deliverEntry(ctx context.Context, r *http.Request, header http.Header, body []byte,
	info *batchEntry, traced bool) delivery {
	if !traced {
		d := s.deliverOne(ctx, header, body)
		d.entry = info
		return d
	}
	start := time.Now()
	d, ev, ok := s.parse(header, body)
	d.entry = info
	d.span = s.startEntry(ctx, r, start, d.meta.Traceparent, info)
	if !ok {
		return d
	}
	return s.process(trace.ContextWithSpan(ctx, d.span), d, ev)
}

// finish records one answered event.
func (s *Server) finish(d delivery, took time.Duration) {
	s.metrics.Delivery(d.outcome, took)
	s.logDelivery(d, took)
	endDelivery(d)
}
