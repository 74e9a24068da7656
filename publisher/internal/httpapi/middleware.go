package httpapi

import (
	"errors"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/rs/zerolog"

	"github.com/taskevents/taskevents/publisher/internal/problem"
)

// recorder remembers the status so the access log and the panic handler know
// what (if anything) was already sent.
type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the real writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func wrap(w http.ResponseWriter) *recorder {
	if rec, ok := w.(*recorder); ok {
		return rec
	}
	return &recorder{ResponseWriter: w}
}

// recoverPanics turns a panic into a 500 problem without internals, and logs
// the panic with its stack for whoever has to fix it.
func recoverPanics(log zerolog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := wrap(w)
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(v) // net/http's way to abort a response; let it do so
			}
			log.Error().Str("method", r.Method).Str("path", r.URL.Path).
				Interface("panic", v).Str("stack", string(debug.Stack())).
				Msg("handler panicked")
			if rec.status != 0 {
				return // too late for a clean error; the client sees a cut response
			}
			problem.Write(rec, problem.Blank(http.StatusInternalServerError,
				"The server hit an unexpected error; the publisher's logs have the details."))
		}()
		next.ServeHTTP(rec, r)
	})
}

// logRequests logs one debug line per request; the domain outcome (the
// publish) is logged at info by the sidecar client.
func logRequests(log zerolog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if log.GetLevel() > zerolog.DebugLevel {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		rec := wrap(w)
		next.ServeHTTP(rec, r)
		log.Debug().Str("method", r.Method).Str("path", r.URL.Path).Int("status", rec.status).
			Float64("duration_ms", float64(time.Since(start).Microseconds())/1000).Msg("request")
	})
}
