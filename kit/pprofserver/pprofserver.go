// Package pprofserver serves net/http/pprof on a listener and a mux of its
// own (PPROF_ADDR): profiles never share a port, or a handler chain, with
// the app's routes or its probes.
package pprofserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/taskevents/taskevents/kit/logging"
)

// Start serves /debug/pprof/ on addr when it is set (PPROF_ADDR) and returns
// the function that stops it, which lets a profile being taken finish within
// timeout (SHUTDOWN_TIMEOUT), then cuts it off. With addr empty nothing
// listens and stop does nothing. It warns when the address it bound is not a
// loopback address: profiles and goroutine dumps reveal internals.
func Start(ctx context.Context, addr string, timeout time.Duration, logger zerolog.Logger) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on PPROF_ADDR %s: %w", addr, err)
	}
	srv, served := newServer(logger), make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	bound := ln.Addr().String()
	logger.Info().Str("pprof_addr", bound).Msg("serving pprof")
	if !IsLoopback(bound) {
		logger.Warn().Str("pprof_addr", bound).
			Msg("PPROF_ADDR is not a loopback address: anyone who can reach it can read profiles of this process")
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		err := srv.Shutdown(ctx)
		if err != nil {
			_ = srv.Close()
		}
		if serveErr := <-served; !errors.Is(serveErr, http.ErrServerClosed) {
			err = serveErr
		}
		if err != nil {
			logger.Warn().Err(err).Msg("pprof listener did not drain within SHUTDOWN_TIMEOUT")
		}
	}, nil
}

// newServer is the pprof mux behind all four timeouts. No method patterns:
// pprof's symbol lookup answers POST as well as GET.
func newServer(logger zerolog.Logger) *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second, // GETs, and symbol lookups of a few KB
		// Outlasts a 30-second CPU profile or trace: pprof refuses a
		// duration longer than the server's write timeout.
		WriteTimeout: 90 * time.Second,
		IdleTimeout:  60 * time.Second,
		ErrorLog:     logging.ErrorLog(logger, "pprof"),
	}
}

// IsLoopback reports whether addr (host:port) only accepts connections from
// this host. An empty host listens on every interface.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	ip := net.ParseIP(host)
	return err == nil && (strings.EqualFold(host, "localhost") || ip != nil && ip.IsLoopback())
}
