package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/taskevents/taskevents/kit/lifecycle"
	"github.com/taskevents/taskevents/kit/logging"
	"github.com/taskevents/taskevents/kit/sidecar"
	"github.com/taskevents/taskevents/kit/tracing"
	"github.com/taskevents/taskevents/worker/internal/config"
	"github.com/taskevents/taskevents/worker/internal/deadletter"
	"github.com/taskevents/taskevents/worker/internal/dedupe"
	"github.com/taskevents/taskevents/worker/internal/fault"
	"github.com/taskevents/taskevents/worker/internal/handler"
	"github.com/taskevents/taskevents/worker/internal/metrics"
	"github.com/taskevents/taskevents/worker/internal/server"
)

// serviceName is service.name in the worker's spans unless OTEL_SERVICE_NAME
// says otherwise. It is not the app-id (task-worker): daprd reports its own
// spans under that name.
const serviceName = "taskevents-worker"

// run is the whole program; main only adds signals and the exit code.
// It returns nil after a clean shutdown triggered by ctx.
func run(ctx context.Context, environ []string, stdout io.Writer) error {
	cfg, err := config.Load(environ)
	if err != nil {
		return err
	}
	logger := logging.New(stdout, cfg.Level())
	tr, err := tracing.New(ctx, environ, tracing.Options{ServiceName: serviceName, Console: stdout, Logger: logger})
	if err != nil {
		return err
	}
	// Deferred first, so it runs last: once the servers have drained, every
	// delivery's span has ended.
	defer lifecycle.Flush(ctx, tr.Shutdown, cfg.ShutdownTimeout, logger)

	logger.Info().Int("port", cfg.Port).Str("listen_host", cfg.ListenHost).
		Int("ops_port", cfg.OpsPort).Str("ops_listen_host", cfg.OpsListenHost).
		Bool("api_token_set", cfg.APIToken != "").Bool("dapr_api_token_set", cfg.DaprAPIToken != "").
		Int64("max_event_bytes", cfg.MaxEventBytes).Int64("max_batch_bytes", cfg.MaxBatchBytes).
		Int("bulk_concurrency", cfg.BulkConcurrency).Str("pprof_addr", cfg.PprofAddr).
		Str("dedupe_store", cfg.DedupeStore).Str("dedupe_lease", cfg.DedupeLease.String()).
		Str("dedupe_ttl", cfg.DedupeTTL.String()).Str("handler_timeout", cfg.HandlerTimeout.String()).
		Str("drain_delay", cfg.DrainDelay.String()).Str("shutdown_timeout", cfg.ShutdownTimeout.String()).
		Func(tr.Log).Msg("starting")
	if cfg.APIToken == "" {
		logger.Warn().Msg("APP_API_TOKEN is not set: event routes accept requests from anyone who can reach this port")
	}

	var h handler.Handler = handler.Accept{}
	if fc := (fault.Config{RetryRate: cfg.FaultRetryRate, RetryFirst: cfg.FaultRetryFirst, Delay: cfg.FaultDelay,
		DropTitle: cfg.FaultDropTitle}); fc.Enabled() {
		h = fault.Wrap(h, fc)
		logger.Warn().Float64("fault_retry_rate", fc.RetryRate).Int("fault_retry_first", fc.RetryFirst).
			Str("fault_delay", fc.Delay.String()).Str("fault_drop_title", fc.DropTitle).Msg("fault injection enabled")
	}

	m := metrics.New()
	deps := server.Deps{
		Logger:          logger,
		Handler:         h,
		Metrics:         m,
		APIToken:        cfg.APIToken,
		MaxEventBytes:   cfg.MaxEventBytes,
		MaxBatchBytes:   cfg.MaxBatchBytes,
		BulkConcurrency: cfg.BulkConcurrency,
		HandlerTimeout:  cfg.HandlerTimeout,
		Tracing:         tr,
	}
	if cfg.UsesStateStore() {
		// Every delivery makes two or three state calls; the client keeps
		// its connections alive, so no call pays for a handshake.
		state := sidecar.New(sidecar.Options{BaseURL: cfg.SidecarBaseURL(), APIToken: cfg.DaprAPIToken,
			Timeout: cfg.HandlerTimeout})
		defer state.Close()
		deps.Ledger = dedupe.NewStateLedger(state, cfg.DedupeStore, cfg.DedupeLease, cfg.DedupeTTL, time.Now)
		deps.DeadLetters = deadletter.New(state, cfg.DedupeStore, time.Now)
	} else {
		mem := dedupe.New(cfg.DedupeMaxEntries, cfg.DedupeTTL, time.Now)
		m.TrackDedupeEntries(mem.Len)
		deps.Ledger = mem
		logger.Warn().Msg("DEDUPE_STORE=memory: dedupe records die with this process and are not shared with replicas; dead letters are only logged")
	}

	var draining atomic.Bool
	deps.Ready = func() bool { return !draining.Load() }

	// Request contexts outlive ctx (in-flight handlers finish during the
	// drain) and end only if the shutdown deadline passes.
	requestCtx, stopRequests := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRequests()
	srv := &http.Server{
		Handler:           server.New(deps),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		// Covers reading the body, the handler, the ledger and the reply.
		WriteTimeout: 2*cfg.HandlerTimeout + 10*time.Second,
		// daprd keeps connections to the app open between deliveries.
		IdleTimeout: 120 * time.Second,
		BaseContext: func(net.Listener) context.Context { return requestCtx },
	}
	// The event server drains first; the probes keep answering (503) until
	// it has.
	return lifecycle.Run(ctx, lifecycle.App{
		Drain: lifecycle.Drain{Logger: logger, Begin: func() { draining.Store(true) },
			Delay: cfg.DrainDelay, Timeout: cfg.ShutdownTimeout,
			// Handlers still running see their context end and answer RETRY.
			Expired: stopRequests},
		Host: cfg.ListenHost, Port: cfg.Port, OpsHost: cfg.OpsListenHost, OpsPort: cfg.OpsPort, PprofAddr: cfg.PprofAddr,
		Server: srv, Ops: server.Ops(deps),
	})
}
