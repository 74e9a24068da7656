package main

import (
	"context"
	_ "embed"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/taskevents/taskevents/kit/lifecycle"
	"github.com/taskevents/taskevents/kit/logging"
	"github.com/taskevents/taskevents/kit/sidecar"
	"github.com/taskevents/taskevents/kit/tracing"
	"github.com/taskevents/taskevents/publisher/internal/config"
	"github.com/taskevents/taskevents/publisher/internal/httpapi"
	"github.com/taskevents/taskevents/publisher/internal/idempotency"
	"github.com/taskevents/taskevents/publisher/internal/metrics"
	"github.com/taskevents/taskevents/publisher/internal/publish"
	"github.com/taskevents/taskevents/publisher/internal/readiness"
)

// readTimeout bounds reading one request (headers and a body of at most
// 64 KiB); the write timeout adds the idempotency and publish deadlines on top.
const readTimeout = 10 * time.Second

// run loads the configuration from environ, serves until ctx is cancelled,
// then drains: readiness turns 503, DRAIN_DELAY passes so load balancers stop
// routing here, and in-flight requests get SHUTDOWN_TIMEOUT to finish.
func run(ctx context.Context, environ []string, stdout io.Writer) error {
	cfg, err := config.Load(environ)
	if err != nil {
		return err
	}
	logger := logging.New(stdout, cfg.Level()).With().Str("app", cfg.AppID).Logger()
	if cfg.ShutdownTimeout < cfg.PublishTimeout {
		logger.Warn().Dur("shutdown_timeout", cfg.ShutdownTimeout).Dur("publish_timeout", cfg.PublishTimeout).
			Msg("SHUTDOWN_TIMEOUT is shorter than PUBLISH_TIMEOUT; a publish in flight at shutdown may be cut off")
	}

	m := metrics.New()
	tr, err := tracing.New(ctx, environ, tracing.Options{ServiceName: serviceName, Console: stdout, Logger: logger})
	if err != nil {
		return err
	}
	// Deferred first, so it runs last: after the server has drained and the
	// publisher has sent what was queued, every span has ended.
	defer lifecycle.Flush(ctx, tr.Shutdown, cfg.ShutdownTimeout, logger)

	client := sidecar.New(sidecar.Options{
		BaseURL:      cfg.SidecarBaseURL(),
		APIToken:     cfg.DaprAPIToken,
		MaxIdleConns: cfg.SidecarMaxIdleConns,
	})
	defer client.Close()
	// Publishes that arrive while PUBLISH_MAX_IN_FLIGHT others are in flight
	// queue and go together in one bulk publish; a lone one still goes alone.
	// Without coalescing nothing limits the publishes in flight, so nothing
	// queues and every event goes alone.
	maxBatch, maxInFlight := cfg.PublishBatchMax, cfg.PublishMaxInFlight
	if !cfg.PublishCoalesce {
		maxBatch, maxInFlight = 1, 0
	}
	publisher := publish.New(client.Topic(cfg.PubSubName, cfg.Topic), publish.Options{
		PubSubName:     cfg.PubSubName,
		Topic:          cfg.Topic,
		MaxBatch:       maxBatch,
		MaxInFlight:    maxInFlight,
		PublishTimeout: cfg.PublishTimeout,
		Logger:         logger,
		Observer:       m,
		Traced:         tr.Enabled(),
	})
	// Closed after the server has drained: by then no handler waits on it,
	// and Close still sends whatever is queued.
	defer publisher.Close()

	// A claim gets the budget of one publish attempt: it is one or two quick
	// sidecar calls, and the request still has its whole PUBLISH_TIMEOUT after.
	claimTimeout := cfg.PublishTimeout / 2
	var keys idempotency.Store
	storeName := ""
	if cfg.IdempotencyStore == config.IdempotencyInMemory {
		keys = idempotency.NewMemory(cfg.IdempotencyKeyTTL, idempotency.MemoryKeys, time.Now)
	} else {
		keys = idempotency.NewDapr(client, cfg.IdempotencyStore, cfg.IdempotencyKeyTTL, claimTimeout)
		storeName = cfg.IdempotencyStore
	}

	probe := readiness.New(logger)
	handler := httpapi.New(httpapi.Deps{
		Publisher:        publisher,
		Ready:            probe.Status,
		Logger:           logger,
		MaxTitleLength:   cfg.MaxTitleLength,
		PubSubName:       cfg.PubSubName,
		Topic:            cfg.Topic,
		AppID:            cfg.AppID,
		Idempotency:      keys,
		IdempotencyStore: storeName,
		OpenAPI:          openAPI,
		Tracing:          tr,
		Metrics:          m,
	})

	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       readTimeout,
		// The write deadline starts when the headers are read, so it must
		// cover reading the body, the idempotency claim and the whole
		// publish, retries included.
		WriteTimeout: readTimeout + claimTimeout + cfg.PublishTimeout + 2*time.Second,
		IdleTimeout:  120 * time.Second,
	}

	var wg sync.WaitGroup
	probeCtx, stopProbe := context.WithCancel(ctx)
	defer func() { stopProbe(); wg.Wait() }()
	wg.Go(func() {
		probe.Run(probeCtx, cfg.ReadinessInterval, client.CheckOutbound, func(ctx context.Context) {
			checkComponents(ctx, client, cfg, logger)
		})
	})

	return lifecycle.Run(ctx, lifecycle.App{
		Drain: lifecycle.Drain{Logger: logger, Begin: probe.Drain, Delay: cfg.DrainDelay, Timeout: cfg.ShutdownTimeout},
		Host:  cfg.ListenHost, Port: cfg.Port, OpsHost: cfg.OpsListenHost, OpsPort: cfg.OpsPort, PprofAddr: cfg.PprofAddr,
		Server: srv, Ops: httpapi.Ops(m.Handler(), probe.Status),
		Fields: func(e *zerolog.Event) {
			e.Str("sidecar", cfg.SidecarBaseURL()).Str("pubsubname", cfg.PubSubName).Str("topic", cfg.Topic).
				Str("idempotency_store", cfg.IdempotencyStore).Dur("idempotency_key_ttl", cfg.IdempotencyKeyTTL).
				Bool("publish_coalesce", cfg.PublishCoalesce).Int("publish_batch_max", cfg.PublishBatchMax).
				Int("publish_max_in_flight", cfg.PublishMaxInFlight).Func(tr.Log)
		},
	})
}

// openAPI is the API's description, served at GET /openapi.yaml; the
// end-to-end tests validate real responses against this same file.
//
//go:embed openapi.yaml
var openAPI []byte

// serviceName is service.name in the publisher's spans unless
// OTEL_SERVICE_NAME says otherwise. It is not the app-id (task-api): daprd
// reports its own spans under that name.
const serviceName = "taskevents-publisher"

// checkComponents warns when the sidecar has not loaded the components we
// use: every publish would fail with ERR_PUBSUB_NOT_FOUND without the pub/sub
// component, and every request with an Idempotency-Key with
// ERR_STATE_STORE_NOT_FOUND without the state store. The log says so at
// startup rather than at the first request.
func checkComponents(ctx context.Context, client *sidecar.Client, cfg config.Config, logger zerolog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	comps, err := client.Components(ctx)
	var ce *sidecar.ConfigError
	switch {
	case errors.As(err, &ce) && ce.Status == http.StatusUnauthorized:
		logger.Warn().Int("status", ce.Status).
			Msg("sidecar refused DAPR_API_TOKEN on /v1.0/metadata; publishes will be rejected with 401 until the tokens match")
		return
	case err != nil:
		logger.Warn().Err(err).Msg("could not list the sidecar's components; skipping the component check")
		return
	}
	names := make([]string, 0, len(comps))
	types := map[string]string{}
	for _, c := range comps {
		names = append(names, c.Name)
		types[c.Name] = c.Type
	}
	check := func(field, name, loaded, missing string) {
		if typ, ok := types[name]; ok {
			logger.Info().Str(field, name).Str("type", typ).Msg(loaded)
		} else {
			logger.Warn().Str(field, name).Strs("components", names).Msg(missing)
		}
	}
	check("pubsubname", cfg.PubSubName, "pub/sub component loaded by the sidecar",
		"the sidecar has no component named PUBSUB_NAME; publishes will fail with ERR_PUBSUB_NOT_FOUND. "+
			"Check the component's metadata.name, its scopes, and --resources-path / kubectl get components")
	if cfg.IdempotencyStore != config.IdempotencyInMemory {
		check("idempotency_store", cfg.IdempotencyStore, "idempotency state store loaded by the sidecar",
			"the sidecar has no component named IDEMPOTENCY_STORE; requests with an Idempotency-Key will fail with 502 "+
				"(requests without one are not affected). Add a state store component of that name, or set IDEMPOTENCY_STORE=memory")
	}
}
