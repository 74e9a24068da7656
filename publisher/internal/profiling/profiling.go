// Package profiling serves net/http/pprof on a listener of its own, apart
// from the API, so that profiles are never reachable through the API's port.
package profiling

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/rs/zerolog"
)

// writeTimeout lets a client ask for the default 30 s CPU profile (or a
// trace of that length) and still receive it.
const writeTimeout = 45 * time.Second

// Server is a running pprof listener.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan error
}

// Listen starts serving /debug/pprof/ on addr. It warns when addr is not a
// loopback address: profiles and goroutine dumps reveal internals.
func Listen(ctx context.Context, addr string, logger zerolog.Logger) (*Server, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on PPROF_ADDR %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	s := &Server{
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second, // requests are GETs (symbol lookups POST a few KB)
			WriteTimeout:      writeTimeout,
			IdleTimeout:       60 * time.Second,
			ErrorLog:          log.New(logger.With().Str("component", "pprof").Logger(), "", 0),
		},
		ln:   ln,
		done: make(chan error, 1),
	}
	go func() { s.done <- s.srv.Serve(ln) }()
	l := logger.Info()
	if !loopback(ln.Addr()) {
		l = logger.Warn()
	}
	l.Str("pprof_addr", ln.Addr().String()).Bool("loopback", loopback(ln.Addr())).
		Msg("serving net/http/pprof; keep PPROF_ADDR on a loopback address, profiles reveal internals")
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Shutdown lets a profile being written finish, until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
	}
	if serveErr := <-s.done; serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return err
}

func loopback(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}
