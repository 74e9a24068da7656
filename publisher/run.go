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
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/taskevents/taskevents/publisher/internal/config"
	"github.com/taskevents/taskevents/publisher/internal/httpapi"
	"github.com/taskevents/taskevents/publisher/internal/readiness"
	"github.com/taskevents/taskevents/publisher/internal/sidecar"
)

// readTimeout bounds reading one request (headers and a body of at most
// 64 KiB); the write timeout adds the publish deadline on top.
const readTimeout = 10 * time.Second

// run loads the configuration from environ, serves until ctx is cancelled,
// then drains: readiness turns 503, DRAIN_DELAY passes so load balancers stop
// routing here, and in-flight requests get SHUTDOWN_TIMEOUT to finish.
func run(ctx context.Context, environ []string, stdout io.Writer) error {
	cfg, err := config.Load(environ)
	if err != nil {
		return err
	}
	logger := zerolog.New(stdout).Level(cfg.Level()).With().Timestamp().Str("app", cfg.AppID).Logger()
	if cfg.ShutdownTimeout < cfg.PublishTimeout {
		logger.Warn().Dur("shutdown_timeout", cfg.ShutdownTimeout).Dur("publish_timeout", cfg.PublishTimeout).
			Msg("SHUTDOWN_TIMEOUT is shorter than PUBLISH_TIMEOUT; a publish in flight at shutdown may be cut off")
	}

	client := sidecar.New(sidecar.Options{
		BaseURL:        cfg.SidecarBaseURL(),
		APIToken:       cfg.DaprAPIToken,
		PubSubName:     cfg.PubSubName,
		Topic:          cfg.Topic,
		PublishTimeout: cfg.PublishTimeout,
		MaxIdleConns:   cfg.SidecarMaxIdleConns,
		Logger:         logger,
	})
	defer client.Close()

	probe := readiness.New(logger)
	handler := httpapi.New(httpapi.Deps{
		Publisher:      client,
		Ready:          probe.Status,
		Logger:         logger,
		MaxTitleLength: cfg.MaxTitleLength,
		PubSubName:     cfg.PubSubName,
		Topic:          cfg.Topic,
		AppID:          cfg.AppID,
	})

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort(cfg.ListenHost, strconv.Itoa(cfg.Port)))
	if err != nil {
		return fmt.Errorf("listen on APP_PORT %d: %w", cfg.Port, err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       readTimeout,
		// The write deadline starts when the headers are read, so it must
		// cover reading the body and the whole publish, retries included.
		WriteTimeout: readTimeout + cfg.PublishTimeout + 2*time.Second,
		IdleTimeout:  120 * time.Second,
		ErrorLog:     log.New(logger.With().Str("component", "http").Logger(), "", 0),
	}

	var wg sync.WaitGroup
	probeCtx, stopProbe := context.WithCancel(ctx)
	defer func() { stopProbe(); wg.Wait() }()
	wg.Go(func() {
		probe.Run(probeCtx, cfg.ReadinessInterval, client.CheckOutbound, func(ctx context.Context) {
			checkComponent(ctx, client, cfg.PubSubName, logger)
		})
	})

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	logger.Info().Str("addr", ln.Addr().String()).Str("sidecar", cfg.SidecarBaseURL()).
		Str("pubsubname", cfg.PubSubName).Str("topic", cfg.Topic).Msg("listening")

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	probe.Drain()
	logger.Info().Dur("drain_delay", cfg.DrainDelay).Msg("draining: readiness is 503, waiting before shutdown")
	time.Sleep(cfg.DrainDelay)

	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shutdown within SHUTDOWN_TIMEOUT %s: %w", cfg.ShutdownTimeout, err)
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	logger.Info().Msg("shut down cleanly")
	return nil
}

// checkComponent warns when the sidecar has not loaded the pub/sub component
// we publish to: every publish would then fail with ERR_PUBSUB_NOT_FOUND, and
// the log says so at startup rather than at the first request.
func checkComponent(ctx context.Context, client *sidecar.Client, name string, logger zerolog.Logger) {
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
		logger.Warn().Err(err).Msg("could not list the sidecar's components; skipping the pub/sub component check")
		return
	}
	names := make([]string, 0, len(comps))
	for _, c := range comps {
		if c.Name == name {
			logger.Info().Str("pubsubname", name).Str("type", c.Type).Msg("pub/sub component loaded by the sidecar")
			return
		}
		names = append(names, c.Name)
	}
	logger.Warn().Str("pubsubname", name).Strs("components", names).
		Msg("the sidecar has no component named PUBSUB_NAME; publishes will fail with ERR_PUBSUB_NOT_FOUND. " +
			"Check the component's metadata.name, its scopes, and --resources-path / kubectl get components")
}
