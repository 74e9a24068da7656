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

// serverSpan starts the server span of r, backdated to start, continuing
// the trace of the traceparent header daprd sends (its delivery span). With
// tracing off it returns r's context and a nil span.
func (s *Deps) serverSpan(r *http.Request, route string, start time.Time, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if !s.Tracing.Enabled() {
		return r.Context(), nil
	}
	return s.Tracing.StartServer(tracing.Extract(r.Context(), r.Header), r, route, append(opts, trace.WithTimestamp(start))...)
}

// deliverySpan starts the span of one delivery. An entry of a bulk delivery
// continues the trace of its own CloudEvent's traceparent (the publisher's
// span), not the bulk request's, and links to the batch's span, which ctx
// holds; an entry without a valid traceparent becomes a child of it.
func (s *Deps) deliverySpan(ctx context.Context, r *http.Request, d *delivery) (context.Context, trace.Span) {
	if d.entry == nil {
		return s.serverSpan(r, "/events/todo", d.start)
	}
	batch := trace.SpanFromContext(ctx).SpanContext()
	return s.Tracing.StartServer(tracing.ExtractFrom(ctx, d.meta.Traceparent, ""), r, "/events/todo",
		trace.WithTimestamp(d.start), trace.WithLinks(trace.Link{SpanContext: batch}),
		trace.WithAttributes(attribute.String("dapr.bulk.entry_id", d.entry.entryID),
			semconv.MessagingBatchMessageCount(d.entry.size)))
}

// endDelivery records what happened to the event on its span and ends it.
// RETRY and DROP mark the span failed: the event was not handled.
func endDelivery(d *delivery) {
	if d.span == nil {
		return
	}
	attrs := make([]attribute.KeyValue, 0, 7)
	attrs = append(attrs, attribute.String("dapr.delivery.outcome", d.outcome), attribute.Bool("dapr.delivery.duplicate", d.duplicate))
	for _, kv := range [...]attribute.KeyValue{semconv.MessagingMessageID(d.meta.ID), semconv.MessagingDestinationName(d.meta.Topic),
		attribute.String("dapr.pubsub.name", d.meta.PubsubName), attribute.String("task.id", d.task.TaskID),
		semconv.CloudEventsEventType(d.task.EventType)} {
		if kv.Value.AsString() != "" {
			attrs = append(attrs, kv)
		}
	}
	d.span.SetAttributes(attrs...)
	if d.outcome != metrics.OutcomeSuccess {
		d.span.SetStatus(codes.Error, d.outcome+": "+d.reason)
	}
	tracing.EndServer(d.span, http.StatusOK) // daprd always gets 200 and the outcome in the body
}
