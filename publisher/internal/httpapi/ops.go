package httpapi

import "net/http"

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
	problemsOnly(mux, map[string]string{"/healthz": "GET, HEAD", "/readyz": "GET, HEAD", "/metrics": "GET, HEAD"},
		"The ops port serves GET /metrics, GET /healthz and GET /readyz; the API is on APP_PORT.")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, opsBodyLimit)
		mux.ServeHTTP(w, r)
	})
}
