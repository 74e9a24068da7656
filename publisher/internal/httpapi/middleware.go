package httpapi

import (
	"errors"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/taskevents/taskevents/kit/problem"
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

// observe is every request's middleware, in one recorder: it counts the
// route, status and duration (a panic's 500 included), turns a panic into a
// 500 problem without internals (logged with its stack for whoever has to fix
// it), and logs one debug line per request; the domain outcome (the publish)
// is logged at info by the publisher.
func observe(m Observer, log zerolog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := wrap(w)
		defer func() {
			v := recover()
			if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(v) // net/http's way to abort a response; let it do so
			}
			if v != nil {
				log.Error().Str("method", r.Method).Str("path", r.URL.Path).
					Interface("panic", v).Str("stack", string(debug.Stack())).Msg("handler panicked")
				if rec.status == 0 { // else too late for a clean error; the client sees a cut response
					problem.Write(rec, problem.Blank(http.StatusInternalServerError,
						"The server hit an unexpected error; the publisher's logs have the details."))
				}
			} else if log.GetLevel() <= zerolog.DebugLevel {
				log.Debug().Str("method", r.Method).Str("path", r.URL.Path).Int("status", rec.status).
					Float64("duration_ms", float64(time.Since(start).Microseconds())/1000).Msg("request")
			}
			code := rec.status
			if code == 0 {
				code = http.StatusOK // net/http's answer when a handler writes nothing
			}
			m.Request(route(r.Pattern), code, time.Since(start))
		}()
		next.ServeHTTP(rec, r)
	})
}

// route is the label for a matched pattern: its path without the method
// ("POST /tasks" is "/tasks"), and "other" for the catch-all "/" and for no
// match. Never the request's own path, which a client chooses.
func route(pattern string) string {
	if _, path, ok := strings.Cut(pattern, " "); ok {
		pattern = path
	}
	if pattern == "" || pattern == "/" {
		return "other"
	}
	return pattern
}
