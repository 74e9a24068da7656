package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/taskevents/taskevents/worker/internal/config"
	"github.com/taskevents/taskevents/worker/internal/dedupe"
	"github.com/taskevents/taskevents/worker/internal/fault"
	"github.com/taskevents/taskevents/worker/internal/handler"
	"github.com/taskevents/taskevents/worker/internal/metrics"
	"github.com/taskevents/taskevents/worker/internal/server"
)

// run is the whole program; main only adds signals and the exit code.
// It returns nil after a clean shutdown triggered by ctx.
func run(ctx context.Context, environ []string, stdout io.Writer) error {
	cfg, err := config.Load(environ)
	if err != nil {
		return err
	}
	logger := zerolog.New(stdout).Level(cfg.Level()).With().Timestamp().Logger()

	logger.Info().
		Int("port", cfg.Port).
		Str("listen_host", cfg.ListenHost).
		Bool("api_token_set", cfg.APIToken != "").
		Int64("max_event_bytes", cfg.MaxEventBytes).
		Int("dedupe_max_entries", cfg.DedupeMaxEntries).
		Str("dedupe_ttl", cfg.DedupeTTL.String()).
		Str("handler_timeout", cfg.HandlerTimeout.String()).
		Str("drain_delay", cfg.DrainDelay.String()).
		Str("shutdown_timeout", cfg.ShutdownTimeout.String()).
		Msg("starting")
	if cfg.APIToken == "" {
		logger.Warn().Msg("APP_API_TOKEN is not set: event routes accept requests from anyone who can reach this port")
	}

	var h handler.Handler = handler.Accept{}
	if fc := (fault.Config{RetryRate: cfg.FaultRetryRate, RetryFirst: cfg.FaultRetryFirst, Delay: cfg.FaultDelay}); fc.Enabled() {
		h = fault.Wrap(h, fc)
		logger.Warn().
			Float64("fault_retry_rate", fc.RetryRate).
			Int("fault_retry_first", fc.RetryFirst).
			Str("fault_delay", fc.Delay.String()).
			Msg("fault injection enabled")
	}

	m := metrics.New()
	store := dedupe.New(cfg.DedupeMaxEntries, cfg.DedupeTTL, time.Now)
	m.TrackDedupeEntries(store.Len)

	var draining atomic.Bool
	routes := server.New(server.Options{
		Logger:         logger,
		Handler:        h,
		Store:          store,
		Metrics:        m,
		APIToken:       cfg.APIToken,
		MaxEventBytes:  cfg.MaxEventBytes,
		HandlerTimeout: cfg.HandlerTimeout,
		Ready:          func() bool { return !draining.Load() },
	})

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort(cfg.ListenHost, strconv.Itoa(cfg.Port)))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}

	// Request contexts outlive ctx (in-flight handlers finish during the
	// drain) and end only if the shutdown deadline passes.
	requestCtx, stopRequests := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRequests()
	srv := &http.Server{
		Handler:           routes,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		// Covers reading the body, the handler and the reply.
		WriteTimeout: cfg.HandlerTimeout + 10*time.Second,
		// daprd keeps connections to the app open between deliveries.
		IdleTimeout: 120 * time.Second,
		BaseContext: func(net.Listener) context.Context { return requestCtx },
		ErrorLog:    log.New(warnWriter{logger}, "", 0),
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	logger.Info().Str("addr", ln.Addr().String()).Msg("listening")

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	// Fail readiness first and keep serving for DRAIN_DELAY, so endpoints and
	// the sidecar stop sending before the listener closes.
	draining.Store(true)
	logger.Info().Str("drain_delay", cfg.DrainDelay.String()).Msg("draining")
	drain := time.NewTimer(cfg.DrainDelay)
	select {
	case <-drain.C:
	case err := <-serveErr:
		drain.Stop()
		return fmt.Errorf("serve: %w", err)
	}

	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		// Handlers still running see their context end and answer RETRY.
		stopRequests()
		_ = srv.Close()
		return fmt.Errorf("shutdown: in-flight requests did not finish within SHUTDOWN_TIMEOUT (%s): %w", cfg.ShutdownTimeout, err)
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	logger.Info().Msg("stopped")
	return nil
}

// warnWriter sends net/http's own error log (TLS noise, handler panics,
// bad requests) through zerolog.
type warnWriter struct{ log zerolog.Logger }

func (w warnWriter) Write(p []byte) (int, error) {
	w.log.Warn().Str("component", "http.Server").Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}
