// Package lifecycle serves an app's HTTP servers and drains them on
// SIGTERM the same way in both apps: readiness turns 503, DRAIN_DELAY
// passes while the servers keep serving, so that Kubernetes endpoints and
// the Dapr sidecar stop sending, then each server shuts down within
// SHUTDOWN_TIMEOUT.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/rs/zerolog"
)

// Server is an http.Server and the listener it serves. Every server sets
// all four timeouts; Serve refuses one that does not.
type Server struct {
	HTTP     *http.Server
	Listener net.Listener
}

// Drain is what happens between the signal and the exit.
type Drain struct {
	Logger zerolog.Logger
	// Begin turns readiness to 503; it is called once, when ctx ends.
	Begin func()
	// Delay is DRAIN_DELAY: how long the servers keep serving after Begin.
	Delay time.Duration
	// Timeout is SHUTDOWN_TIMEOUT: how long in-flight requests get to finish.
	Timeout time.Duration
	// Expired, if set, runs when requests are still in flight at Timeout,
	// before the servers are closed (to cancel the handlers' contexts).
	Expired func()
}

// Serve serves every server until ctx ends, then drains them: Begin, Delay,
// and Shutdown of each in the order given, the first one first (list the
// probes' server after the one it reports on, so it answers 503 until the
// end). It returns nil after a clean drain, or the error of a server that
// failed. The listeners are closed when Serve returns.
func Serve(ctx context.Context, d Drain, servers ...Server) error {
	for i, s := range servers {
		if err := checkTimeouts(s.HTTP); err != nil {
			for _, s := range servers {
				_ = s.Listener.Close()
			}
			return fmt.Errorf("server %d (%s): %w", i, s.Listener.Addr(), err)
		}
	}
	serveErr := make(chan error, len(servers))
	for _, s := range servers {
		go func() { serveErr <- s.HTTP.Serve(s.Listener) }()
	}
	closeAll := func() {
		for _, s := range servers {
			_ = s.HTTP.Close()
		}
	}

	select {
	case err := <-serveErr:
		closeAll()
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	d.Begin()
	d.Logger.Info().Str("drain_delay", d.Delay.String()).Msg("draining")
	delay := time.NewTimer(d.Delay)
	select {
	case <-delay.C:
	case err := <-serveErr:
		delay.Stop()
		closeAll()
		return fmt.Errorf("serve: %w", err)
	}

	shutdownCtx, cancel := context.WithTimeout(context.Background(), d.Timeout)
	defer cancel()
	var errs []error
	for _, s := range servers {
		errs = append(errs, s.HTTP.Shutdown(shutdownCtx))
	}
	if err := errors.Join(errs...); err != nil {
		if d.Expired != nil {
			d.Expired()
		}
		closeAll()
		return fmt.Errorf("shutdown: in-flight requests did not finish within SHUTDOWN_TIMEOUT (%s): %w", d.Timeout, err)
	}
	for range servers {
		if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve: %w", err)
		}
	}
	d.Logger.Info().Msg("stopped")
	return nil
}

// checkTimeouts holds every server to the four timeouts: without them one
// slow or idle client holds a connection, and a goroutine, for ever.
func checkTimeouts(s *http.Server) error {
	for _, t := range []struct {
		name string
		d    time.Duration
	}{
		{"ReadHeaderTimeout", s.ReadHeaderTimeout}, {"ReadTimeout", s.ReadTimeout},
		{"WriteTimeout", s.WriteTimeout}, {"IdleTimeout", s.IdleTimeout},
	} {
		if t.d <= 0 {
			return fmt.Errorf("%s is not set", t.name)
		}
	}
	return nil
}
