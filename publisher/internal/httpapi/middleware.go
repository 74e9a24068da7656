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

// countRequests records every request's route, status and duration. It is
// the outermost middleware, so a panic's 500 is counted too; its recorder is
// the one the inner middlewares reuse, so it costs no allocation of its own.
func countRequests(m Observer, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := wrap(w)
		next.ServeHTTP(rec, r)
		code := rec.status
		if code == 0 {
			code = http.StatusOK // net/http's answer when a handler writes nothing
		}
		m.Request(route(r.Pattern), code, time.Since(start))
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

// logRequests logs one debug line per request; the domain outcome (the
// publish) is logged at info by the publisher.
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
