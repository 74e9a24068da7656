// Package server is the worker's HTTP surface. Every route is registered
// here: New is the event port (deliveries from the sidecar, the dead-letter
// admin, and the probes daprd's app health check calls), which only the
// pod's sidecar reaches; Ops is what the kubelet and Prometheus reach.
package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/taskevents/taskevents/kit/logging"
	"github.com/taskevents/taskevents/kit/problem"
	"github.com/taskevents/taskevents/kit/tracing"
	"github.com/taskevents/taskevents/worker/internal/deadletter"
	"github.com/taskevents/taskevents/worker/internal/dedupe"
	"github.com/taskevents/taskevents/worker/internal/handler"
	"github.com/taskevents/taskevents/worker/internal/metrics"
)

// TokenHeader is the header daprd puts APP_API_TOKEN in.
const TokenHeader = "dapr-api-token" //nolint:gosec // G101: a header name, not a credential

// Deps is what the handlers need.
type Deps struct {
	Logger  zerolog.Logger
	Handler handler.Handler
	Ledger  dedupe.Ledger
	// DeadLetters, when not nil, keeps dead letters for listing and replay;
	// nil only logs and counts them.
	DeadLetters *deadletter.Store
	Metrics     *metrics.Metrics
	// APIToken, when not empty, is required on /events/* and /admin/*.
	APIToken      string
	MaxEventBytes int64
	// MaxBatchBytes caps the body of a bulk delivery; each of its events
	// is still held to MaxEventBytes. Zero: MaxEventBytes.
	MaxBatchBytes int64
	// BulkConcurrency is how many entries of one bulk delivery are handled
	// at once. Zero: one at a time.
	BulkConcurrency int
	HandlerTimeout  time.Duration
	// Ready reports whether to answer /readyz with 200; nil is always.
	Ready func() bool
	// Tracing records a span per delivery; nil is tracing off.
	Tracing *tracing.Tracing
}

// Slugs of the worker's own problem types, each a section of docs/problems.md.
const (
	problemUnauthorized       = "unauthorized"
	problemNotReplayable      = "not-replayable"
	problemDeadLettersNotKept = "deadletters-not-kept"
)

const (
	appRoutes = "POST /events/todo, POST /events/deadletter, GET /admin/deadletters, GET /admin/deadletters/{id}, " +
		"POST /admin/deadletters/{id}/replay, DELETE /admin/deadletters/{id}, GET /healthz, GET /readyz"
	opsRoutes = "GET /healthz, GET /readyz, GET /metrics"
)

// New returns the event port's handler.
func New(d Deps) http.Handler {
	d.BulkConcurrency = max(d.BulkConcurrency, 1)
	a := admin{kept: d.DeadLetters, log: d.Logger}
	mux := http.NewServeMux()
	// No /dapr/subscribe: subscriptions are declarative, and a programmatic
	// one for the same topic would silently replace them. daprd's GET there
	// gets a 404, which it reads as "no programmatic subscriptions"
	// (dapr/dapr pkg/runtime/pubsub/subscriptions.go, GetSubscriptionsHTTP).
	mux.Handle("POST /events/todo", events(&d))
	mux.Handle("POST /events/deadletter", deadLetter(&d))
	mux.Handle("GET /admin/deadletters", a.route(a.list))
	mux.Handle("GET /admin/deadletters/{id}", a.route(a.get))
	mux.Handle("POST /admin/deadletters/{id}/replay", a.route(a.replay))
	mux.Handle("DELETE /admin/deadletters/{id}", a.route(a.discard))
	// daprd's app health check probes the app port.
	mux.HandleFunc("GET /healthz", healthz)
	mux.Handle("GET /readyz", readyz(d.Ready))
	return requireToken(&d, withProblems(mux, appRoutes))
}

// Ops returns the ops port's handler: probes and metrics, no token, and
// nothing that changes state.
func Ops(d Deps) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", healthz)
	mux.Handle("GET /readyz", readyz(d.Ready))
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.Metrics.Registry, promhttp.HandlerOpts{}))
	return withProblems(mux, opsRoutes)
}

func healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, `{"status":"ok"}`)
}

// readyz turns 503 while draining, so Kubernetes takes the pod out of its
// Services before the server stops.
func readyz(ready func() bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if ready != nil && !ready() {
			writeJSON(w, http.StatusServiceUnavailable, `{"status":"draining"}`)
			return
		}
		writeJSON(w, http.StatusOK, `{"status":"ready"}`)
	})
}

// requireToken guards /events/* and /admin/* with APP_API_TOKEN. Probes stay
// open: daprd's app health check does not send the token, and they reveal
// nothing worth protecting.
func requireToken(d *Deps, next http.Handler) http.Handler {
	if d.APIToken == "" {
		return next
	}
	want := sha256.Sum256([]byte(d.APIToken))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Comparing hashes takes the same time whatever the length of the
		// presented token.
		got := r.Header.Get(TokenHeader)
		if sum := sha256.Sum256([]byte(got)); !isProtected(r.URL.Path) ||
			got != "" && subtle.ConstantTimeCompare(sum[:], want[:]) == 1 {
			next.ServeHTTP(w, r)
			return
		}
		d.Metrics.Unauthorized()
		d.Logger.Warn().
			Str("method", r.Method).
			Str("path", logging.Truncate(r.URL.Path, 256)).
			Str("remote_addr", r.RemoteAddr).
			Bool("token_present", got != "").
			Msg("unauthorized request")
		problem.Write(w, problem.New(problemUnauthorized, "Unauthorized", http.StatusUnauthorized,
			"The dapr-api-token header is missing or does not match this worker's APP_API_TOKEN. "+
				"daprd sends it when its own APP_API_TOKEN (annotation dapr.io/app-token-secret) holds the same secret."))
	})
}

func isProtected(p string) bool {
	return p == "/events" || strings.HasPrefix(p, "/events/") || p == "/admin" || strings.HasPrefix(p, "/admin/")
}

// withProblems turns ServeMux's plain-text answers to unmatched requests
// (404 and 405) into problem details.
func withProblems(mux *http.ServeMux, routes string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern == "" {
			w = &problemWriter{ResponseWriter: w, r: r, routes: routes}
		}
		mux.ServeHTTP(w, r)
	})
}

// problemWriter replaces ServeMux's 404 and 405 bodies. Headers ServeMux
// set before WriteHeader (Allow on 405) are kept.
type problemWriter struct {
	http.ResponseWriter
	r       *http.Request
	routes  string
	swallow bool
}

func (p *problemWriter) WriteHeader(code int) {
	path := logging.Truncate(p.r.URL.Path, 256)
	switch code {
	case http.StatusNotFound:
		detail := fmt.Sprintf("No route matches %s %s on this port. Routes: %s.", p.r.Method, path, p.routes)
		if strings.HasPrefix(p.r.URL.Path, "/dapr/") {
			detail = "This worker has no programmatic subscriptions or app configuration: its subscriptions are declarative Subscription resources."
		}
		problem.Write(p.ResponseWriter, problem.Blank(code, detail))
	case http.StatusMethodNotAllowed:
		problem.Write(p.ResponseWriter, problem.Blank(code,
			fmt.Sprintf("%s does not accept %s; the Allow header lists the methods it does accept.", path, p.r.Method)))
	default:
		p.ResponseWriter.WriteHeader(code)
		return
	}
	p.swallow = true
}

func (p *problemWriter) Write(b []byte) (int, error) {
	if p.swallow {
		return len(b), nil
	}
	return p.ResponseWriter.Write(b)
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body + "\n"))
}
