// Package server is the worker's HTTP surface: every route is registered in
// New, and ServeHTTP adds what applies to all of them (token check, problem
// details for unmatched routes).
//
// Two listeners, two handlers: the Server itself (events from the sidecar,
// dead-letter admin, health for daprd's app health check) belongs on a port
// only the pod's sidecar reaches; Ops (health probes, metrics) is what the
// kubelet and Prometheus reach.
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

// Options are the server's dependencies.
type Options struct {
	Logger  zerolog.Logger
	Handler handler.Handler
	Ledger  dedupe.Ledger
	// DeadLetters, when not nil, keeps dead letters for listing and replay;
	// nil only logs and counts them.
	DeadLetters *deadletter.Store
	Metrics     *metrics.Metrics
	// APIToken, when not empty, is required on /events/*.
	APIToken      string
	MaxEventBytes int64
	// MaxBatchBytes caps the body of a bulk delivery; each of its events
	// is still held to MaxEventBytes. Zero: MaxEventBytes.
	MaxBatchBytes int64
	// BulkConcurrency is how many entries of one bulk delivery are handled
	// at once. Zero: one at a time.
	BulkConcurrency int
	HandlerTimeout  time.Duration
	// Ready reports whether to answer /readyz with 200.
	Ready func() bool
	// Tracing records a span per delivery; nil is tracing off.
	Tracing *tracing.Tracing
}

// Server is an http.Handler.
type Server struct {
	log             zerolog.Logger
	handler         handler.Handler
	ledger          dedupe.Ledger
	deadLetters     *deadletter.Store
	metrics         *metrics.Metrics
	maxEventBytes   int64
	maxBatchBytes   int64
	bulkConcurrency int
	handlerTimeout  time.Duration
	ready           func() bool
	tracing         *tracing.Tracing

	checkToken bool
	tokenHash  [sha256.Size]byte

	mux *http.ServeMux
	ops *http.ServeMux
}

// New wires the routes.
func New(o Options) *Server {
	s := &Server{
		log:             o.Logger,
		handler:         o.Handler,
		ledger:          o.Ledger,
		deadLetters:     o.DeadLetters,
		metrics:         o.Metrics,
		maxEventBytes:   o.MaxEventBytes,
		maxBatchBytes:   o.MaxBatchBytes,
		bulkConcurrency: max(o.BulkConcurrency, 1),
		handlerTimeout:  o.HandlerTimeout,
		ready:           o.Ready,
		tracing:         o.Tracing,
		checkToken:      o.APIToken != "",
		tokenHash:       sha256.Sum256([]byte(o.APIToken)),
		mux:             http.NewServeMux(),
		ops:             http.NewServeMux(),
	}
	if s.ready == nil {
		s.ready = func() bool { return true }
	}

	// No /dapr/subscribe: subscriptions are declarative, and a programmatic
	// one for the same topic would silently replace them. daprd's GET there
	// gets a 404, which it reads as "no programmatic subscriptions"
	// (dapr/dapr pkg/runtime/pubsub/subscriptions.go, GetSubscriptionsHTTP).
	s.mux.HandleFunc("POST /events/todo", s.handleEvent)
	s.mux.HandleFunc("POST /events/deadletter", s.handleDeadLetter)
	s.mux.HandleFunc("GET /admin/deadletters", s.handleListDeadLetters)
	s.mux.HandleFunc("GET /admin/deadletters/{id}", s.handleGetDeadLetter)
	s.mux.HandleFunc("POST /admin/deadletters/{id}/replay", s.handleReplay)
	s.mux.HandleFunc("DELETE /admin/deadletters/{id}", s.handleDeleteDeadLetter)
	// daprd's app health check probes the app port.
	s.mux.HandleFunc("GET /healthz", s.handleHealthz)
	s.mux.HandleFunc("GET /readyz", s.handleReadyz)

	s.ops.HandleFunc("GET /healthz", s.handleHealthz)
	s.ops.HandleFunc("GET /readyz", s.handleReadyz)
	s.ops.Handle("GET /metrics", promhttp.HandlerFor(o.Metrics.Registry, promhttp.HandlerOpts{}))
	return s
}

// Ops is the handler for the ops port: probes and metrics, no token, and
// nothing that changes state.
func (s *Server) Ops() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := s.ops.Handler(r); pattern == "" {
			s.ops.ServeHTTP(&problemWriter{ResponseWriter: w, r: r, routes: opsRoutes}, r)
			return
		}
		s.ops.ServeHTTP(w, r)
	})
}

const (
	appRoutes = "POST /events/todo, POST /events/deadletter, GET /admin/deadletters, GET /admin/deadletters/{id}, " +
		"POST /admin/deadletters/{id}/replay, DELETE /admin/deadletters/{id}, GET /healthz, GET /readyz"
	opsRoutes = "GET /healthz, GET /readyz, GET /metrics"
)

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Probes stay open: daprd's app health check does not send the token,
	// and they reveal nothing worth protecting.
	if s.checkToken && isProtected(r.URL.Path) && !s.authorized(r) {
		s.metrics.Unauthorized()
		s.log.Warn().
			Str("method", r.Method).
			Str("path", logging.Truncate(r.URL.Path, 256)).
			Str("remote_addr", r.RemoteAddr).
			Bool("token_present", r.Header.Get(TokenHeader) != "").
			Msg("unauthorized request")
		problem.Write(w, problem.New(problemUnauthorized, "Unauthorized", http.StatusUnauthorized,
			"The dapr-api-token header is missing or does not match this worker's APP_API_TOKEN. "+
				"daprd sends it when its own APP_API_TOKEN (annotation dapr.io/app-token-secret) holds the same secret."))
		return
	}
	if _, pattern := s.mux.Handler(r); pattern == "" {
		// ServeMux answers unmatched requests with text/plain 404 and 405;
		// turn those into problem details.
		s.mux.ServeHTTP(&problemWriter{ResponseWriter: w, r: r, routes: appRoutes}, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

func isProtected(p string) bool {
	return p == "/events" || strings.HasPrefix(p, "/events/") || p == "/admin" || strings.HasPrefix(p, "/admin/")
}

// authorized compares hashes so that the comparison takes the same time
// whatever the length of the presented token.
func (s *Server) authorized(r *http.Request) bool {
	got := r.Header.Get(TokenHeader)
	if got == "" {
		return false
	}
	h := sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(h[:], s.tokenHash[:]) == 1
}

// problemWriter replaces ServeMux's plain-text 404 and 405 bodies. Headers
// ServeMux set before WriteHeader (Allow on 405) are kept.
type problemWriter struct {
	http.ResponseWriter
	r       *http.Request
	routes  string
	swallow bool
}

func (p *problemWriter) WriteHeader(code int) {
	switch code {
	case http.StatusNotFound:
		p.swallow = true
		detail := fmt.Sprintf("No route matches %s %s on this port. Routes: %s.",
			p.r.Method, logging.Truncate(p.r.URL.Path, 256), p.routes)
		if strings.HasPrefix(p.r.URL.Path, "/dapr/") {
			detail = "This worker has no programmatic subscriptions or app configuration: its subscriptions are declarative Subscription resources."
		}
		problem.Write(p.ResponseWriter, problem.Blank(code, detail))
	case http.StatusMethodNotAllowed:
		p.swallow = true
		problem.Write(p.ResponseWriter, problem.Blank(code,
			fmt.Sprintf("%s does not accept %s; the Allow header lists the methods it does accept.", logging.Truncate(p.r.URL.Path, 256), p.r.Method)))
	default:
		p.ResponseWriter.WriteHeader(code)
	}
}

func (p *problemWriter) Write(b []byte) (int, error) {
	if p.swallow {
		return len(b), nil
	}
	return p.ResponseWriter.Write(b)
}
