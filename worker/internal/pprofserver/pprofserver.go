// Package pprofserver serves net/http/pprof on a mux of its own, for a
// listener of its own: the profiles never share a port, or a handler
// chain, with the event routes or the probes.
package pprofserver

import (
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// New returns the server for PPROF_ADDR. Its write timeout outlasts a
// 30-second CPU profile or trace (/debug/pprof/profile?seconds=30).
func New() *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      90 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
}

// IsLoopback reports whether addr (host:port) only accepts connections from
// this host. An empty host listens on every interface.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
