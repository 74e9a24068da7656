package httpapi

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/taskevents/taskevents/kit/tracing"
	"github.com/taskevents/taskevents/publisher/internal/publish"
)

// SpanCreateTask is the server span's name the end-to-end trace test looks for.
const SpanCreateTask = "POST /tasks"

// traceTasks wraps POST /tasks in a server span that continues the caller's
// trace (its traceparent and tracestate). With tracing off it returns next
// itself, so the request path is what it was without tracing.
func traceTasks(t *tracing.Tracing, next http.Handler) http.Handler {
	if !t.Enabled() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, span := t.StartServer(tracing.Extract(r.Context(), r.Header), r, "/tasks")
		rec := wrap(w)
		next.ServeHTTP(rec, r.WithContext(ctx))
		tracing.EndServer(span, rec.status)
	})
}

// tracePublish returns the trace context that goes to daprd with ev. With
// tracing off it is the request's own traceparent and tracestate, passed
// through unchanged, and span is nil. With tracing on it is a producer span's,
// "publish <topic>", a child of the request's server span: daprd's publish
// span and the CloudEvent's traceparent then hang under it.
func (d Deps) tracePublish(ctx context.Context, r *http.Request, ev publish.TaskCreated) (
	context.Context, trace.Span, publish.TraceContext) {
	if !d.Tracing.Enabled() {
		return ctx, nil, publish.TraceContext{
			TraceParent: r.Header.Get("traceparent"),
			TraceState:  r.Header.Get("tracestate"),
		}
	}
	trace.SpanFromContext(ctx).SetAttributes(attribute.String("task.id", ev.TaskID))
	// The task id is also the message id (cloudevent.id): one attribute says it.
	// Every attribute costs again when the span is exported.
	ctx, span := d.Tracing.Tracer().Start(ctx, "publish "+d.Topic, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			semconv.MessagingSystemKey.String("dapr"),
			semconv.MessagingOperationName("publish"),
			semconv.MessagingOperationTypeSend,
			semconv.MessagingDestinationName(d.Topic),
			semconv.MessagingMessageID(ev.TaskID),
			attribute.String("dapr.pubsub.name", d.PubSubName),
			semconv.CloudEventsEventType(publish.EventTypeTaskCreated)))
	tp, ts := tracing.Inject(ctx)
	return ctx, span, publish.TraceContext{TraceParent: tp, TraceState: ts}
}
