// Package httpapi is the publisher's HTTP surface: routes, handlers, and the
// mapping of every failure to an RFC 9457 problem.
package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/taskevents/taskevents/kit/jsonstr"
	"github.com/taskevents/taskevents/kit/logging"
	"github.com/taskevents/taskevents/kit/problem"
	"github.com/taskevents/taskevents/kit/tracing"
	"github.com/taskevents/taskevents/publisher/internal/idempotency"
	"github.com/taskevents/taskevents/publisher/internal/publish"
)

// Publisher publishes task events: *publish.Publisher, or an in-memory fake
// in tests.
type Publisher interface {
	// Publish returns nil only once the sidecar accepted the event, and
	// otherwise a *sidecar.ConfigError or an error matching
	// sidecar.ErrUnavailable.
	Publish(ctx context.Context, ev publish.TaskCreated, trace publish.TraceContext) error
}

// Deps is what the handlers need.
type Deps struct {
	Publisher Publisher
	// Ready reports readiness for /readyz and, when not ready, why.
	Ready  func() (ready bool, reason string)
	Logger zerolog.Logger
	// MaxTitleLength in Unicode code points.
	MaxTitleLength int
	// PubSubName, Topic and AppID only appear in error details that tell an
	// operator what to fix.
	PubSubName string
	Topic      string
	AppID      string
	// NewID returns a task id; default uuid.NewString (v4).
	NewID func() string
	// Idempotency remembers Idempotency-Keys; default: in memory for 24h.
	Idempotency idempotency.Store
	// IdempotencyStore names the Dapr state store in error details.
	IdempotencyStore string
	// OpenAPI is the document GET /openapi.yaml serves.
	OpenAPI []byte
	// Metrics counts requests and 503s; default: nobody.
	Metrics Observer
	// Tracing records the spans of POST /tasks; nil is tracing off.
	Tracing *tracing.Tracing
}

// Observer counts what the API answers (the real one is *metrics.Metrics).
// It runs on every request, so it must be cheap.
type Observer interface {
	// Request records an answered request: route is the matched pattern's
	// path, or "other" when no route matched.
	Request(route string, code int, took time.Duration)
	// SidecarUnavailable records a 503 because the event was not accepted in time.
	SidecarUnavailable()
}

type noObserver struct{}

func (noObserver) Request(string, int, time.Duration) {}
func (noObserver) SidecarUnavailable()                {}

// New returns the publisher's handler with every route and middleware.
func New(d Deps) http.Handler {
	if d.NewID == nil {
		d.NewID = uuid.NewString
	}
	if d.Ready == nil {
		d.Ready = func() (bool, string) { return true, "ready" }
	}
	if d.Idempotency == nil {
		d.Idempotency = idempotency.NewMemory(24*time.Hour, idempotency.MemoryKeys, time.Now)
	}
	if d.Metrics == nil {
		d.Metrics = noObserver{}
	}
	mux := http.NewServeMux()
	mux.Handle("POST /tasks", traceTasks(d.Tracing, createTask(d)))
	// The probes stay here as well as on the ops port: daprd's app health
	// check calls the app port.
	mux.HandleFunc("GET /healthz", healthz)
	mux.HandleFunc("GET /readyz", readyz(d.Ready))
	mux.HandleFunc("GET /openapi.yaml", func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/yaml")
		h.Set("Content-Length", strconv.Itoa(len(d.OpenAPI)))
		_, _ = w.Write(d.OpenAPI)
	})
	problemsOnly(mux, map[string]string{"/tasks": http.MethodPost, "/healthz": "GET, HEAD", "/readyz": "GET, HEAD",
		"/openapi.yaml": "GET, HEAD"}, "This API serves POST /tasks, GET /healthz, GET /readyz and GET /openapi.yaml.")
	return observe(d.Metrics, d.Logger, mux)
}

// problemsOnly keeps every error of mux problem+json: ServeMux would answer
// method mismatches and unknown paths itself, in text/plain. allow maps each
// path to its Allow header; serves ends the 404's detail.
func problemsOnly(mux *http.ServeMux, allow map[string]string, serves string) {
	for path, methods := range allow {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", methods)
			problem.Write(w, problem.Blank(http.StatusMethodNotAllowed, fmt.Sprintf(
				"%s is not allowed on %s; use %s.", r.Method, r.URL.Path, methods)))
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, problem.Blank(http.StatusNotFound, fmt.Sprintf(
			"No route for %s %s. %s", r.Method, logging.Truncate(r.URL.Path, 200), serves)))
	})
}

// healthz is cheap and never checks dependencies.
func healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, statusBody("ok"))
}

// readyz answers 503 while ready says so (no sidecar, or draining).
func readyz(ready func() (bool, string)) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		ok, reason := ready()
		code := http.StatusOK
		if !ok {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, statusBody(reason))
	}
}

// statusBody is {"status":s}, the body of /healthz and /readyz.
func statusBody(s string) []byte {
	return append(jsonstr.Append([]byte(`{"status":`), s), "}\n"...)
}

// writeJSON writes body, JSON ending in a newline. The bodies are built by
// hand, with "<" and "&" as they are: reflection was a measurable share of
// the cost of POST /tasks, the hot path.
func writeJSON(w http.ResponseWriter, code int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(body)
}
