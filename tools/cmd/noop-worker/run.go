package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

type config struct {
	Port            int           // APP_PORT, default 8001
	ShutdownTimeout time.Duration // SHUTDOWN_TIMEOUT, default 10s
}

// loadConfig reads the two settings from environ; a bad value is an error naming its variable.
func loadConfig(environ []string) (config, error) {
	vars := map[string]string{"APP_PORT": "8001", "SHUTDOWN_TIMEOUT": "10s"}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			if _, known := vars[k]; known && v != "" {
				vars[k] = v
			}
		}
	}
	var c config
	port, err := strconv.Atoi(vars["APP_PORT"])
	if err != nil || port < 0 || port > 65535 {
		return c, fmt.Errorf("APP_PORT must be a port number (0-65535), got %q", vars["APP_PORT"])
	}
	d, err := time.ParseDuration(vars["SHUTDOWN_TIMEOUT"])
	if err != nil || d <= 0 {
		return c, fmt.Errorf("SHUTDOWN_TIMEOUT must be a positive duration such as 10s, got %q", vars["SHUTDOWN_TIMEOUT"])
	}
	return config{Port: port, ShutdownTimeout: d}, nil
}

// newMux puts every route in one place: the worker's two delivery paths, probes, and the count.
func newMux(c *counter, draining *atomic.Bool) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /events/todo", c.deliveries)
	mux.HandleFunc("POST /events/deadletter", c.deliveries)
	mux.HandleFunc("GET /count", c.count)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if draining.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	return mux
}

func run(ctx context.Context, environ []string, stdout io.Writer) error {
	cfg, err := loadConfig(environ)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stdout, nil))
	var (
		c        counter
		draining atomic.Bool
	)
	srv := &http.Server{
		Handler:           newMux(&c, &draining),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second, // a 16 MiB bulk body over loopback takes far less
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.Port)))
	if err != nil {
		return fmt.Errorf("listen on APP_PORT %d: %w", cfg.Port, err)
	}
	log.Info("listening", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Readiness goes 503 first; Shutdown then lets in-flight deliveries finish, so every
	// event counted was also answered.
	draining.Store(true)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown within SHUTDOWN_TIMEOUT %s: %w", cfg.ShutdownTimeout, err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped", "events", c.n.Load())
	return nil
}
