package lifecycle_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/taskevents/taskevents/kit/kittest"
	"github.com/taskevents/taskevents/kit/lifecycle"
	"github.com/taskevents/taskevents/kit/logging"
)

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func newServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: time.Second, ReadTimeout: time.Second,
		WriteTimeout: 10 * time.Second, IdleTimeout: time.Second}
}

// get starts a request and returns its status code (or 0 on error) on the channel.
func get(url string) <-chan int {
	c := make(chan int, 1)
	go func() {
		resp, err := http.Get(url)
		if err != nil {
			c <- 0
			return
		}
		_ = resp.Body.Close()
		c <- resp.StatusCode
	}()
	return c
}

func TestRefusesAServerWithoutATimeout(t *testing.T) {
	for _, unset := range []func(*http.Server){
		func(s *http.Server) { s.ReadHeaderTimeout = 0 },
		func(s *http.Server) { s.ReadTimeout = 0 },
		func(s *http.Server) { s.WriteTimeout = 0 },
		func(s *http.Server) { s.IdleTimeout = 0 },
	} {
		srv := newServer(http.NotFoundHandler())
		unset(srv)
		ln := listen(t)
		err := lifecycle.Serve(context.Background(), lifecycle.Drain{Logger: zerolog.Nop(), Begin: func() {}},
			lifecycle.Server{HTTP: newServer(http.NotFoundHandler()), Listener: listen(t)}, lifecycle.Server{HTTP: srv, Listener: ln})
		if err == nil || !strings.Contains(err.Error(), "Timeout is not set") || !strings.Contains(err.Error(), "server 1") {
			t.Errorf("Serve = %v, want an error naming server 1's unset timeout", err)
		}
		if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
			_ = c.Close()
			t.Error("the listener is still open")
		}
	}
}

// TestDrain walks the SIGTERM sequence: Begin, serving on through the
// delay, an in-flight request allowed to finish, and a clean return.
func TestDrain(t *testing.T) {
	release, inSlow := make(chan struct{}), make(chan struct{})
	var began atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("/slow", func(http.ResponseWriter, *http.Request) { close(inSlow); <-release })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if began.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	ln := listen(t)
	url := "http://" + ln.Addr().String()
	logs := &logging.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- lifecycle.Serve(ctx, lifecycle.Drain{Logger: zerolog.New(logs), Begin: func() { began.Store(true) },
			Delay: 300 * time.Millisecond, Timeout: 5 * time.Second,
			Expired: func() { t.Error("Expired called after a clean drain") }},
			lifecycle.Server{HTTP: newServer(mux), Listener: ln})
	}()
	if code := <-get(url + "/readyz"); code != http.StatusOK {
		t.Fatalf("GET /readyz before the signal = %d", code)
	}
	slow := get(url + "/slow")
	<-inSlow
	cancel()
	kittest.Eventually(t, "Begin", began.Load)
	// During DRAIN_DELAY the server still answers, with readiness at 503.
	if code := <-get(url + "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz while draining = %d, want 503", code)
	}
	// Past the delay, Shutdown waits for the request in flight.
	select {
	case err := <-done:
		t.Fatalf("Serve returned %v with a request in flight", err)
	case <-time.After(400 * time.Millisecond):
	}
	close(release)
	if code := <-slow; code != http.StatusOK {
		t.Errorf("the in-flight request got %d, want 200", code)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve = %v, want nil after a clean drain", err)
	}
	for _, msg := range []string{`"message":"draining"`, `"message":"stopped"`} {
		if !strings.Contains(logs.String(), msg) {
			t.Errorf("no %q in the logs: %s", msg, logs)
		}
	}
}

func TestShutdownTimeout(t *testing.T) {
	stop := make(chan struct{})
	var expired atomic.Bool
	started := make(chan struct{})
	srv := newServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		close(started)
		<-stop
	}))
	ln := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- lifecycle.Serve(ctx, lifecycle.Drain{Logger: zerolog.Nop(), Begin: func() {},
			Timeout: 100 * time.Millisecond, Expired: func() { expired.Store(true); close(stop) }},
			lifecycle.Server{HTTP: srv, Listener: ln})
	}()
	_ = get("http://" + ln.Addr().String() + "/")
	<-started
	cancel()
	err := <-done
	if err == nil || !strings.Contains(err.Error(), "SHUTDOWN_TIMEOUT (100ms)") {
		t.Errorf("Serve = %v, want an error naming SHUTDOWN_TIMEOUT", err)
	}
	if !expired.Load() {
		t.Error("Expired was not called")
	}
}

func TestServeError(t *testing.T) {
	ln := listen(t)
	_ = ln.Close() // Serve fails at once
	err := lifecycle.Serve(context.Background(), lifecycle.Drain{Logger: zerolog.Nop(),
		Begin: func() { t.Error("Begin called without a signal") }}, lifecycle.Server{HTTP: newServer(http.NotFoundHandler()), Listener: ln})
	if err == nil || !strings.HasPrefix(err.Error(), "serve: ") || errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve = %v, want the serve error", err)
	}
}
