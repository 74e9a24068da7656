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
	"github.com/taskevents/taskevents/worker/internal/deadletter"
	"github.com/taskevents/taskevents/worker/internal/dedupe"
	"github.com/taskevents/taskevents/worker/internal/fault"
	"github.com/taskevents/taskevents/worker/internal/handler"
	"github.com/taskevents/taskevents/worker/internal/metrics"
	"github.com/taskevents/taskevents/worker/internal/pprofserver"
	"github.com/taskevents/taskevents/worker/internal/server"
	"github.com/taskevents/taskevents/worker/internal/sidecar"
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
		Int("ops_port", cfg.OpsPort).
		Str("ops_listen_host", cfg.OpsListenHost).
		Bool("api_token_set", cfg.APIToken != "").
		Bool("dapr_api_token_set", cfg.DaprAPIToken != "").
		Int64("max_event_bytes", cfg.MaxEventBytes).
		Int64("max_batch_bytes", cfg.MaxBatchBytes).
		Int("bulk_concurrency", cfg.BulkConcurrency).
		Str("pprof_addr", cfg.PprofAddr).
		Str("dedupe_store", cfg.DedupeStore).
		Str("dedupe_lease", cfg.DedupeLease.String()).
		Str("dedupe_ttl", cfg.DedupeTTL.String()).
		Str("handler_timeout", cfg.HandlerTimeout.String()).
		Str("drain_delay", cfg.DrainDelay.String()).
		Str("shutdown_timeout", cfg.ShutdownTimeout.String()).
		Msg("starting")
	if cfg.APIToken == "" {
		logger.Warn().Msg("APP_API_TOKEN is not set: event routes accept requests from anyone who can reach this port")
	}

	var h handler.Handler = handler.Accept{}
	if fc := (fault.Config{RetryRate: cfg.FaultRetryRate, RetryFirst: cfg.FaultRetryFirst, Delay: cfg.FaultDelay,
		DropTitle: cfg.FaultDropTitle}); fc.Enabled() {
		h = fault.Wrap(h, fc)
		logger.Warn().
			Float64("fault_retry_rate", fc.RetryRate).
			Int("fault_retry_first", fc.RetryFirst).
			Str("fault_delay", fc.Delay.String()).
			Str("fault_drop_title", fc.DropTitle).
			Msg("fault injection enabled")
	}

	m := metrics.New()
	opts := server.Options{
		Logger:          logger,
		Handler:         h,
		Metrics:         m,
		APIToken:        cfg.APIToken,
		MaxEventBytes:   cfg.MaxEventBytes,
		MaxBatchBytes:   cfg.MaxBatchBytes,
		BulkConcurrency: cfg.BulkConcurrency,
		HandlerTimeout:  cfg.HandlerTimeout,
	}
	if cfg.UsesStateStore() {
		state := sidecar.New(sidecar.Options{BaseURL: cfg.SidecarBaseURL(), Store: cfg.DedupeStore,
			APIToken: cfg.DaprAPIToken, Timeout: cfg.HandlerTimeout})
		opts.Ledger = dedupe.NewStateLedger(state, cfg.DedupeLease, cfg.DedupeTTL, time.Now)
		opts.DeadLetters = deadletter.New(state, time.Now)
	} else {
		mem := dedupe.New(cfg.DedupeMaxEntries, cfg.DedupeTTL, time.Now)
		m.TrackDedupeEntries(mem.Len)
		opts.Ledger = dedupe.Memory{Store: mem}
		logger.Warn().Msg("DEDUPE_STORE=memory: dedupe records die with this process and are not shared with replicas; dead letters are only logged")
	}

	var draining atomic.Bool
	opts.Ready = func() bool { return !draining.Load() }
	routes := server.New(opts)

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort(cfg.ListenHost, strconv.Itoa(cfg.Port)))
	if err != nil {
		return fmt.Errorf("listen on APP_PORT %d: %w", cfg.Port, err)
	}
	opsLn, err := lc.Listen(ctx, "tcp", net.JoinHostPort(cfg.OpsListenHost, strconv.Itoa(cfg.OpsPort)))
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("listen on OPS_PORT %d: %w", cfg.OpsPort, err)
	}

	// Request contexts outlive ctx (in-flight handlers finish during the
	// drain) and end only if the shutdown deadline passes.
	requestCtx, stopRequests := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRequests()
	errLog := log.New(warnWriter{logger}, "", 0)
	srv := &http.Server{
		Handler:           routes,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		// Covers reading the body, the handler, the ledger and the reply.
		WriteTimeout: 2*cfg.HandlerTimeout + 10*time.Second,
		// daprd keeps connections to the app open between deliveries.
		IdleTimeout: 120 * time.Second,
		BaseContext: func(net.Listener) context.Context { return requestCtx },
		ErrorLog:    errLog,
	}
	ops := &http.Server{
		Handler:           routes.Ops(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       5 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          errLog,
	}

	servers := []*http.Server{srv, ops}
	listeners := []net.Listener{ln, opsLn}
	if cfg.PprofAddr != "" {
		pprofLn, err := lc.Listen(ctx, "tcp", cfg.PprofAddr)
		if err != nil {
			_ = ln.Close()
			_ = opsLn.Close()
			return fmt.Errorf("listen on PPROF_ADDR %s: %w", cfg.PprofAddr, err)
		}
		if !pprofserver.IsLoopback(cfg.PprofAddr) {
			logger.Warn().Str("pprof_addr", cfg.PprofAddr).
				Msg("PPROF_ADDR is not a loopback address: anyone who can reach it can read profiles of this process")
		}
		debug := pprofserver.New()
		debug.ErrorLog = errLog
		servers, listeners = append(servers, debug), append(listeners, pprofLn)
		logger.Info().Str("pprof_addr", pprofLn.Addr().String()).Msg("serving pprof")
	}
	closeAll := func() {
		for _, s := range servers {
			_ = s.Close()
		}
	}

	serveErr := make(chan error, len(servers))
	for i, s := range servers {
		go func() { serveErr <- s.Serve(listeners[i]) }()
	}
	logger.Info().Str("addr", ln.Addr().String()).Str("ops_addr", opsLn.Addr().String()).Msg("listening")

	select {
	case err := <-serveErr:
		closeAll()
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
		closeAll()
		return fmt.Errorf("serve: %w", err)
	}

	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	// Probes keep answering (503) until the event server has drained.
	err = srv.Shutdown(shutdownCtx)
	for _, s := range servers[1:] {
		// A profile still being taken is cut off at the deadline.
		_ = s.Shutdown(shutdownCtx)
	}
	if err != nil {
		// Handlers still running see their context end and answer RETRY.
		stopRequests()
		closeAll()
		return fmt.Errorf("shutdown: in-flight requests did not finish within SHUTDOWN_TIMEOUT (%s): %w", cfg.ShutdownTimeout, err)
	}
	for range servers {
		if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve: %w", err)
		}
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
