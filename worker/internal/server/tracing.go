package server

import (
	"context"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskevents/taskevents/kit/tracing"
	"github.com/taskevents/taskevents/worker/internal/metrics"
)

// Span names the end-to-end trace test looks for. A delivery's span has the
// same name whether the event came alone or in a bulk delivery, so a trace
// reads the same either way; the bulk request itself gets spanBatch.
const (
	SpanEvents       = "POST /events/todo"
	spanBatch        = "POST /events/todo batch"
	spanHandlePrefix = "handle " // + the event type: "handle task.created"
)

// startDelivery starts the server span of a single delivery, continuing the
// trace of the traceparent header daprd sends (its delivery span). With
// tracing off it returns ctx and a nil span.
func (s *Server) startDelivery(ctx context.Context, r *http.Request, start time.Time) (context.Context, trace.Span) {
	if !s.tracing.Enabled() {
		return ctx, nil
	}
	return s.tracing.StartServer(tracing.Extract(ctx, r.Header), r, "/events/todo", trace.WithTimestamp(start))
}

// startDeadLetter starts the server span of a delivery from the dead-letter
// topic, continuing the trace of daprd's traceparent header; nil with
// tracing off.
func (s *Server) startDeadLetter(r *http.Request, start time.Time) trace.Span {
	if !s.tracing.Enabled() {
		return nil
	}
	_, span := s.tracing.StartServer(tracing.Extract(r.Context(), r.Header), r, "/events/deadletter",
		trace.WithTimestamp(start))
	return span
}

// startBatch starts the span of a bulk delivery's request. Its entries
// belong to traces of their own; each entry's span links to this one.
func (s *Server) startBatch(ctx context.Context, r *http.Request, start time.Time, size int) (context.Context, trace.Span) {
	if !s.tracing.Enabled() {
		return ctx, nil
	}
	ctx, span := s.tracing.StartServer(tracing.Extract(ctx, r.Header), r, "/events/todo", trace.WithTimestamp(start),
		trace.WithAttributes(semconv.MessagingBatchMessageCount(size)))
	span.SetName(spanBatch)
	return ctx, span
}

// startEntry starts the server span of one entry of a bulk delivery: it
// continues the trace of the entry's own CloudEvent traceparent (the
// publisher's span), not the bulk request's, and links to the batch's span.
// An entry without a valid traceparent becomes a child of the batch's span.
func (s *Server) startEntry(ctx context.Context, r *http.Request, start time.Time, traceparent string,
	info *batchEntry) trace.Span {
	batch := trace.SpanFromContext(ctx).SpanContext()
	_, span := s.tracing.StartServer(tracing.ExtractFrom(ctx, traceparent, ""), r, "/events/todo",
		trace.WithTimestamp(start), trace.WithLinks(trace.Link{SpanContext: batch}),
		trace.WithAttributes(attribute.String("dapr.bulk.entry_id", info.entryID),
			semconv.MessagingBatchMessageCount(info.size)))
	return span
}

// endDelivery records what happened to the event on its span and ends it.
// RETRY and DROP mark the span failed: the event was not handled.
func endDelivery(d delivery) {
	if d.span == nil {
		return
	}
	attrs := make([]attribute.KeyValue, 0, 8)
	attrs = append(attrs, attribute.String("dapr.delivery.outcome", d.outcome), attribute.Bool("dapr.delivery.duplicate", d.duplicate))
	if d.meta.ID != "" {
		attrs = append(attrs, semconv.MessagingMessageID(d.meta.ID))
	}
	if d.meta.Topic != "" {
		attrs = append(attrs, semconv.MessagingDestinationName(d.meta.Topic))
	}
	if d.meta.PubsubName != "" {
		attrs = append(attrs, attribute.String("dapr.pubsub.name", d.meta.PubsubName))
	}
	if d.task.TaskID != "" {
		attrs = append(attrs, attribute.String("task.id", d.task.TaskID))
	}
	if d.task.EventType != "" {
		attrs = append(attrs, semconv.CloudEventsEventType(d.task.EventType))
	}
	d.span.SetAttributes(attrs...)
	if d.outcome != metrics.OutcomeSuccess {
		d.span.SetStatus(codes.Error, d.outcome+": "+d.reason)
	}
	tracing.EndServer(d.span, http.StatusOK) // daprd always gets 200 and the outcome in the body
}
