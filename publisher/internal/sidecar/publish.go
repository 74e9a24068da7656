package sidecar

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// errorBodyLimit caps how much of an error answer is read: daprd's error
// bodies are a few hundred bytes, and an unexpected server must not make us
// buffer megabytes.
const errorBodyLimit = 4 << 10

// drainLimit is how much of an unread body is discarded so the keep-alive
// connection can be reused; beyond it, closing is cheaper.
const drainLimit = 64 << 10

// retryable marks an attempt failure worth another attempt.
type retryable struct {
	status int
	code   string
	err    error
}

func (r *retryable) Error() string { return r.err.Error() }

// Entry is one event on its way to the sidecar: the event, the trace context
// of the request that made it, and when that request asked, so that its log
// line times the whole publish, queueing included.
type Entry struct {
	Event TaskCreated
	Trace TraceContext
	Start time.Time
}

// Outcome is how an entry's first attempt went: in a request of BatchSize
// entries, after Attempts attempts (0 when it was never sent), with Err nil
// (accepted), a *ConfigError, or an error worth retrying.
type Outcome struct {
	Attempts  int
	BatchSize int
	Err       error
}

// Publish sends ev to the configured topic. Every attempt carries the same
// cloudevent.id (the task id), so a retry after an ambiguous failure is a
// duplicate that subscribers can recognise, not a new event.
func (c *Client) Publish(ctx context.Context, ev TaskCreated, trace TraceContext) error {
	ctx, cancel := context.WithTimeout(ctx, c.publishTimeout)
	defer cancel()
	e := Entry{Event: ev, Trace: trace, Start: time.Now()}
	return c.Finish(ctx, e, Outcome{Attempts: 1, BatchSize: 1, Err: c.PublishOne(ctx, e)})
}

// PublishOne makes one attempt to publish e alone: nil on 204, a
// *ConfigError, or an error worth retrying. It logs nothing; Finish does.
func (c *Client) PublishOne(ctx context.Context, e Entry) error {
	start := time.Now()
	err := c.publishOnce(ctx, c.publishURL(e.Event.TaskID), encodeEvent(e.Event), e.Trace)
	c.observe.PublishCall(false, 1, accepted(err), time.Since(start))
	return err
}

// accepted is how many events a single publish that returned err delivered.
func accepted(err error) int {
	if err == nil {
		return 1
	}
	return 0
}

// Finish completes a publish whose first attempt went as o says: it logs
// the outcome, or retries e alone with backoff until ctx's deadline, and
// returns nil, a *ConfigError or an *UnavailableError.
func (c *Client) Finish(ctx context.Context, e Entry, o Outcome) error {
	attempts, err := o.Attempts, o.Err
	var span trace.Span // the publish span, when tracing is on
	if c.traced {
		span = trace.SpanFromContext(ctx)
	}
	var last *retryable
	for {
		if err == nil {
			c.logPublish(zerolog.InfoLevel, span, e, "published", attempts, o.BatchSize).Msg("task event published")
			return nil
		}
		var ce *ConfigError
		if errors.As(err, &ce) {
			l := c.logPublish(zerolog.ErrorLevel, span, e, "rejected", attempts, o.BatchSize).
				Int("status", ce.Status).Str("error", ce.Message)
			if ce.Code != "" {
				l = l.Str("sidecar_error_code", ce.Code)
			}
			l.Msg("sidecar rejected the task event; fix the configuration")
			return ce
		}
		if !errors.As(err, &last) {
			last = &retryable{err: err}
		}
		if ctx.Err() != nil {
			break
		}
		wait := c.backoff(max(attempts, 1))
		// Stop when the wait alone would cross the deadline: an attempt that
		// cannot start in time only delays the 503.
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) <= wait {
			break
		}
		c.log.Debug().Str("task_id", e.Event.TaskID).Int("attempt", attempts).Err(err).
			Dur("backoff", wait).Msg("publish attempt failed; retrying")
		if !sleep(ctx, wait) {
			break
		}
		attempts++
		c.observe.PublishRetry()
		err = c.PublishOne(ctx, e)
	}

	ue := &UnavailableError{Attempts: attempts, Err: last.err, Status: last.status, Code: last.code}
	if ctx.Err() != nil && errors.Is(last.err, context.DeadlineExceeded) {
		ue.Err = fmt.Errorf("no answer within the publish timeout of %s: %w", c.publishTimeout, last.err)
	}
	l := c.logPublish(zerolog.WarnLevel, span, e, "unavailable", attempts, o.BatchSize).Err(ue.Err)
	if ue.Status != 0 {
		l = l.Int("status", ue.Status).Str("sidecar_error_code", ue.Code)
	}
	l.Msg("task event not published; sidecar unavailable")
	return ue
}

func (c *Client) publishURL(taskID string) string {
	// The query is built by hand, not with url.Values: a task id is a UUID
	// (nothing to escape but, defensively, it is escaped anyway), and the
	// fixed part is computed once in New.
	id := url.QueryEscape(taskID)
	return c.publishPath + "?metadata.cloudevent.id=" + id + c.publishQueryMid + id
}

// publishOnce makes one attempt: nil on 204, *ConfigError, or *retryable.
func (c *Client) publishOnce(ctx context.Context, target string, payload []byte, trace TraceContext) error {
	ctx, cancel := context.WithTimeout(ctx, c.attemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(payload))
	if err != nil {
		return &ConfigError{Message: "cannot build the publish request: " + err.Error()}
	}
	// Without it daprd wraps the body as a text/plain string (datacontenttype
	// text/plain) instead of a JSON object.
	req.Header.Set("Content-Type", "application/json")
	c.setToken(req)
	if trace.TraceParent != "" {
		req.Header.Set("traceparent", trace.TraceParent)
		if trace.TraceState != "" {
			req.Header.Set("tracestate", trace.TraceState)
		}
	}

	resp, err := c.http.Do(req)
	if err != nil {
		// Connection refused or reset, DNS failure, or the attempt timed out.
		return &retryable{err: err}
	}
	defer closeBody(resp)
	if resp.StatusCode == http.StatusNoContent {
		return nil
	}
	code, msg := readError(resp.Body)
	if resp.StatusCode == http.StatusInternalServerError && code == CodePublishMessage {
		// The broker write failed after daprd's own outbound resiliency;
		// a broker blip is worth another try while the deadline allows.
		return &retryable{status: resp.StatusCode, code: code, err: fmt.Errorf("sidecar answered %d %s: %s", resp.StatusCode, code, msg)}
	}
	if msg == "" {
		msg = "unexpected answer from the sidecar"
	}
	return &ConfigError{Status: resp.StatusCode, Code: code, Message: msg}
}

func (c *Client) setToken(req *http.Request) {
	if c.token != "" {
		req.Header.Set("dapr-api-token", c.token)
	}
}

// logPublish starts an entry's log line. When span records (tracing is on),
// the line also gets trace_id, and the span the outcome.
func (c *Client) logPublish(lvl zerolog.Level, span trace.Span, e Entry, outcome string, attempts, batchSize int) *zerolog.Event {
	recording := span != nil && span.IsRecording()
	if recording {
		span.SetAttributes(attribute.String("dapr.publish.outcome", outcome), attribute.Int("dapr.publish.attempts", attempts),
			semconv.MessagingBatchMessageCount(batchSize))
	}
	l := c.log.WithLevel(lvl).
		Str("task_id", e.Event.TaskID).
		Str("topic", c.topic).
		Str("pubsubname", c.pubsub).
		Str("outcome", outcome).
		Int("attempts", attempts).
		Int("batch_size", batchSize).
		Float64("duration_ms", float64(time.Since(e.Start).Microseconds())/1000)
	if e.Trace.TraceParent != "" {
		l = l.Str("traceparent", e.Trace.TraceParent)
	}
	if recording {
		l = l.Str("trace_id", span.SpanContext().TraceID().String())
	}
	return l
}

// readError reads a daprd error body: {"errorCode":"ERR_…","message":"…"}, or
// plain text (the 401 "invalid api token").
func readError(body io.Reader) (code, msg string) {
	raw, _ := io.ReadAll(io.LimitReader(body, errorBodyLimit))
	var e struct {
		ErrorCode string `json:"errorCode"`
		Message   string `json:"message"`
	}
	if json.Unmarshal(raw, &e) == nil && (e.ErrorCode != "" || e.Message != "") {
		return e.ErrorCode, e.Message
	}
	return "", strings.TrimSpace(strings.ToValidUTF8(string(raw), "\uFFFD"))
}

// closeBody drains what is left of resp's body (up to drainLimit) and closes
// it, so the keep-alive connection can be reused.
func closeBody(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainLimit))
	_ = resp.Body.Close()
}

// sleep waits d or until ctx is done; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
