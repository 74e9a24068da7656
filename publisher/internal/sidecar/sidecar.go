// Package sidecar talks to the Dapr sidecar's HTTP API with plain net/http:
// publishing task events with bounded retries, and the health and metadata
// endpoints the readiness probe uses.
package sidecar

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// EventTypeTaskCreated is both the payload's event_type and the CloudEvent type.
const EventTypeTaskCreated = "task.created"

// TaskCreated is the event payload; the worker decodes the same three fields.
type TaskCreated struct {
	EventType string `json:"event_type"`
	TaskID    string `json:"task_id"`
	Title     string `json:"title"`
}

// NewTaskCreated builds the event for a new task.
func NewTaskCreated(taskID, title string) TaskCreated {
	return TaskCreated{EventType: EventTypeTaskCreated, TaskID: taskID, Title: title}
}

// TraceContext is the W3C trace context of the incoming request, forwarded to
// the sidecar so the publish span (and the CloudEvent's traceparent) joins
// the caller's trace instead of starting a new one.
type TraceContext struct {
	TraceParent string
	TraceState  string
}

// Publisher publishes task events. The real one is *Client; tests and
// benchmarks use in-memory fakes.
type Publisher interface {
	// Publish returns nil only once the sidecar accepted the event (204).
	// Errors are *UnavailableError (matches ErrUnavailable; safe to retry)
	// or *ConfigError (the sidecar refused; retrying will not help).
	Publish(ctx context.Context, ev TaskCreated, trace TraceContext) error
}

// ErrUnavailable matches every *UnavailableError via errors.Is.
var ErrUnavailable = errors.New("dapr sidecar unavailable")

// UnavailableError means the event was not accepted before the publish
// deadline: the sidecar could not be reached, timed out, or kept failing to
// hand the message to the broker (500 ERR_PUBSUB_PUBLISH_MESSAGE).
type UnavailableError struct {
	Attempts int
	// Status and Code are the sidecar's last answer, if it answered at all.
	Status int
	Code   string
	Err    error
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("%v after %d attempt(s): %v", ErrUnavailable, e.Attempts, e.Err)
}

// Is makes errors.Is(err, ErrUnavailable) true.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

func (e *UnavailableError) Unwrap() error { return e.Err }

// ConfigError means the sidecar answered with something a retry cannot fix:
// a missing component, a forbidden topic, a wrong API token, a bad request.
type ConfigError struct {
	Status  int    // the sidecar's HTTP status
	Code    string // errorCode from the body; empty for 401 (plain text)
	Message string // message from the body (or the plain-text body)
}

func (e *ConfigError) Error() string {
	code := e.Code
	if code == "" {
		code = http.StatusText(e.Status)
	}
	return fmt.Sprintf("dapr sidecar rejected the request: %d %s: %s", e.Status, code, e.Message)
}

// Error codes from daprd's publish API that the publisher reacts to.
const (
	CodePublishMessage = "ERR_PUBSUB_PUBLISH_MESSAGE"
	CodeNotFound       = "ERR_PUBSUB_NOT_FOUND"
	CodeForbidden      = "ERR_PUBSUB_FORBIDDEN"
)

// Options configure a Client.
type Options struct {
	// BaseURL is the sidecar's HTTP API root, e.g. http://127.0.0.1:3500.
	BaseURL    string
	APIToken   string // sent as dapr-api-token when not empty
	PubSubName string
	Topic      string
	// PublishTimeout bounds one Publish call, retries included.
	PublishTimeout time.Duration
	// AttemptTimeout bounds one HTTP attempt, so that a single hung
	// connection cannot use the whole budget. Default: PublishTimeout/2.
	AttemptTimeout time.Duration
	// MaxIdleConns sizes the keep-alive pool (see NewHTTPClient). Default 256.
	MaxIdleConns int
	// Backoff returns the wait before retry n (n >= 1). Default:
	// Exponential(50ms, 1s). Tests inject a tiny one.
	Backoff func(n int) time.Duration
	// HTTPClient overrides the client built from MaxIdleConns.
	HTTPClient *http.Client
	Logger     zerolog.Logger
	// Observer is told about every publish call; default: nobody.
	Observer Observer
	// Traced says that publishes carry a span in their context (tracing is
	// on): Finish records the outcome on it and its trace id in the log.
	// Off, Finish does not look, which would cost an allocation a publish.
	Traced bool
}

// Observer counts publish calls to the sidecar (the real one is
// *metrics.Metrics). Its methods must be cheap: they run on every publish.
type Observer interface {
	// PublishCall records one call to the single or bulk publish API that
	// carried entries events, of which daprd accepted accepted.
	PublishCall(bulk bool, entries, accepted int, took time.Duration)
	// PublishRetry records an attempt after an event's first.
	PublishRetry()
}

type noObserver struct{}

func (noObserver) PublishCall(bool, int, int, time.Duration) {}
func (noObserver) PublishRetry()                             {}

// Client is the real Publisher. It is safe for concurrent use.
type Client struct {
	base        string
	publishPath string
	// publishQueryMid is the constant middle of a single publish's query,
	// between the cloudevent.id and the partitionKey values.
	publishQueryMid string
	bulkPath        string
	token           string
	pubsub, topic   string
	publishTimeout  time.Duration
	attemptTimeout  time.Duration
	backoff         func(int) time.Duration
	http            *http.Client
	log             zerolog.Logger
	observe         Observer
	traced          bool
}

var _ Publisher = (*Client)(nil)

// New returns a Client.
func New(o Options) *Client {
	if o.PublishTimeout <= 0 {
		o.PublishTimeout = 5 * time.Second
	}
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = o.PublishTimeout / 2
	}
	if o.MaxIdleConns <= 0 {
		o.MaxIdleConns = 256
	}
	if o.Backoff == nil {
		o.Backoff = Exponential(50*time.Millisecond, time.Second)
	}
	if o.HTTPClient == nil {
		o.HTTPClient = NewHTTPClient(o.MaxIdleConns)
	}
	if o.Observer == nil {
		o.Observer = noObserver{}
	}
	base := strings.TrimRight(o.BaseURL, "/")
	target := url.PathEscape(o.PubSubName) + "/" + escapeTopic(o.Topic)
	return &Client{
		base:        base,
		publishPath: base + "/v1.0/publish/" + target,
		// Kafka keys by partitionKey (per-task ordering); other brokers
		// ignore it or, like Redis, pass it on to the subscriber.
		publishQueryMid: "&metadata.cloudevent.type=" + EventTypeTaskCreated + "&metadata.partitionKey=",
		bulkPath:        base + "/v1.0-alpha1/publish/bulk/" + target,
		token:           o.APIToken,
		pubsub:          o.PubSubName,
		topic:           o.Topic,
		publishTimeout:  o.PublishTimeout,
		attemptTimeout:  o.AttemptTimeout,
		backoff:         o.Backoff,
		http:            o.HTTPClient,
		log:             o.Logger,
		observe:         o.Observer,
		traced:          o.Traced,
	}
}

// NewHTTPClient returns a client for a sidecar on the same host or pod.
// net/http keeps only 2 idle connections per host by default, so under
// concurrency every extra publish would dial a new TCP connection and leave
// it in TIME_WAIT; the pool is sized to the expected concurrency instead.
func NewHTTPClient(maxIdleConns int) *http.Client {
	tr := &http.Transport{
		Proxy: nil, // the sidecar is local; HTTP(S)_PROXY must never apply to it
		DialContext: (&net.Dialer{
			Timeout:   2 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          maxIdleConns,
		MaxIdleConnsPerHost:   maxIdleConns,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{
		Transport: tr,
		// daprd never redirects; a redirect means something else is listening.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Exponential returns base, 2*base, 4*base, ... capped at maxWait, each with
// "equal jitter" (a random value in [d/2, d]) so that requests failing
// together do not retry in lockstep.
func Exponential(base, maxWait time.Duration) func(int) time.Duration {
	return func(n int) time.Duration {
		d := maxWait
		if n >= 1 && n < 31 {
			d = min(base<<(n-1), maxWait)
		}
		if d <= 0 {
			return 0
		}
		return d/2 + rand.N(d/2+1) //nolint:gosec // G404: jitter, not security
	}
}

// escapeTopic escapes each "/"-separated segment: daprd takes the whole
// path tail as the topic, so a "/" must stay a separator.
func escapeTopic(topic string) string {
	segs := strings.Split(topic, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}
