package httpapi

import (
	"fmt"
	"net/http"

	"github.com/taskevents/taskevents/kit/logging"
	"github.com/taskevents/taskevents/kit/problem"
)

// opsBodyLimit caps request bodies on the ops port: nothing there reads one.
const opsBodyLimit = 1 << 10

// Ops returns the ops port's handler: GET /metrics (served by metrics) and
// the same /healthz and /readyz as the app port, for Prometheus and the
// kubelet. Nothing on it changes state, and its requests are not counted in
// the app port's request metrics.
func Ops(metrics http.Handler, ready func() (bool, string)) http.Handler {
	if ready == nil {
		ready = func() (bool, string) { return true, "ready" }
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", healthz)
	mux.HandleFunc("GET /readyz", readyz(ready))
	mux.Handle("GET /metrics", metrics)
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		mux.Handle(path, methodNotAllowed("GET, HEAD"))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, problem.Blank(http.StatusNotFound, fmt.Sprintf(
			"No route for %s %s. The ops port serves GET /metrics, GET /healthz and GET /readyz; the API is on APP_PORT.",
			r.Method, logging.Truncate(r.URL.Path, 200))))
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, opsBodyLimit)
		mux.ServeHTTP(w, r)
	})
}
