package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/taskevents/taskevents/tools/harness"
)

type config struct {
	Broker        string `env:"BROKER" envDefault:"redis"`
	Daprd         string `env:"DAPRD,required"`
	Publisher     string `env:"PUBLISHER_BIN,required"`
	Worker        string `env:"WORKER_BIN,required"`
	PublisherPort int    `env:"PUBLISHER_PORT" envDefault:"8000"`
	PublisherOps  int    `env:"PUBLISHER_OPS_PORT" envDefault:"8003"`
	WorkerPort    int    `env:"WORKER_PORT" envDefault:"8001"`
	WorkerOpsPort int    `env:"WORKER_OPS_PORT" envDefault:"8002"`
	PublisherDapr int    `env:"PUBLISHER_DAPR_HTTP_PORT" envDefault:"3500"`
	WorkerDapr    int    `env:"WORKER_DAPR_HTTP_PORT" envDefault:"3501"`
	RedisPort     int    `env:"REDIS_PORT" envDefault:"6380"`
	KafkaPort     int    `env:"KAFKA_PORT" envDefault:"9092"`
	RabbitMQPort  int    `env:"RABBITMQ_PORT" envDefault:"5673"`
	SNSSQSPort    int    `env:"SNSSQS_PORT" envDefault:"4566"`
	Workers       int    `env:"WORKERS" envDefault:"1"`
	WorkerEnv     string `env:"WORKER_ENV"` // e.g. "FAULT_RETRY_RATE=0.3 LOG_LEVEL=debug"
	// Jaeger is the jaeger binary: `make run JAEGER=1` builds it and sets this, and then
	// every sidecar and both apps export their spans to it.
	Jaeger          string `env:"JAEGER"`
	JaegerQueryPort int    `env:"JAEGER_QUERY_PORT" envDefault:"16686"`
}

func run(ctx context.Context, environ []string, stdout io.Writer) error {
	cfg, err := env.ParseAsWithOptions[config](env.Options{Environment: env.ToMap(environ)})
	if err != nil {
		return err
	}
	if !slices.Contains(harness.Brokers, cfg.Broker) {
		return fmt.Errorf("unknown BROKER %q; valid: %s", cfg.Broker, strings.Join(harness.Brokers, ", "))
	}
	ports := map[string]int{"PUBLISHER_PORT": cfg.PublisherPort, "PUBLISHER_OPS_PORT": cfg.PublisherOps, "WORKER_PORT": cfg.WorkerPort, "WORKER_OPS_PORT": cfg.WorkerOpsPort,
		"PUBLISHER_DAPR_HTTP_PORT": cfg.PublisherDapr, "WORKER_DAPR_HTTP_PORT": cfg.WorkerDapr}
	brokerPort := map[string]struct {
		name string
		port int
	}{"redis": {"REDIS_PORT", cfg.RedisPort}, "kafka": {"KAFKA_PORT", cfg.KafkaPort},
		"rabbitmq": {"RABBITMQ_PORT", cfg.RabbitMQPort}, "snssqs": {"SNSSQS_PORT", cfg.SNSSQSPort}}[cfg.Broker]
	ports[brokerPort.name] = brokerPort.port
	if cfg.Jaeger != "" {
		ports["JAEGER_QUERY_PORT"] = cfg.JaegerQueryPort
	}
	for name, port := range ports {
		if !harness.PortFree(port) {
			return fmt.Errorf("port %d (%s) is already in use: stop what holds it (ss -ltnp 'sport = :%d') or set %s", port, name, port, name)
		}
	}
	wd, _ := os.Getwd()
	root, err := harness.FindRoot(wd)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "taskevents-run-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	h, err := harness.New(root, dir, harness.Binaries{Daprd: cfg.Daprd, Publisher: cfg.Publisher, Worker: cfg.Worker, Jaeger: cfg.Jaeger}, stdout)
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(stdout, "stopping everything...")
		if err := h.Close(); err != nil {
			fmt.Fprintln(stdout, err)
		}
	}()

	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	broker, err := h.StartBroker(startCtx, cfg.Broker, brokerPort.port)
	if err != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
			return nil
		}
		return err
	}
	var jaeger *harness.Jaeger
	if cfg.Jaeger != "" {
		if jaeger, err = h.StartJaegerWith(startCtx, harness.JaegerOptions{QueryPort: cfg.JaegerQueryPort}); err != nil {
			if errors.Is(ctx.Err(), context.Canceled) {
				return nil
			}
			return err
		}
	}
	sys, err := h.StartSystem(startCtx, broker, harness.SystemOptions{
		Workers: cfg.Workers, WorkerEnv: strings.Fields(cfg.WorkerEnv), Jaeger: jaeger,
		PublisherPort: cfg.PublisherPort, PublisherOpsPort: cfg.PublisherOps, WorkerPort: cfg.WorkerPort, WorkerOpsPort: cfg.WorkerOpsPort,
		PublisherDaprPort: cfg.PublisherDapr, WorkerDaprPort: cfg.WorkerDapr,
	})
	if err != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
			return nil
		}
		return err
	}
	traces := ""
	if jaeger != nil {
		// The module Jaeger is built from ships no UI assets, so the query API is the way in.
		traces = fmt.Sprintf("  traces (Jaeger):     curl -s '%[1]s/api/traces?service=%[2]s&limit=5'\n"+
			"                       one trace:  curl -s %[1]s/api/traces/<the trace id in a traceparent>\n",
			jaeger.QueryURL, h.Contract.PublisherAppID)
	}
	fmt.Fprintf(stdout, `
================================================================================
taskevents is running on %s. Try:

  curl -i -X POST %s/tasks -H 'Content-Type: application/json' -d '{"title": "Learn Dapr pub/sub"}'

and look for "EVENT RECEIVED" in the [worker] lines below. Also:
  publisher metrics:   curl -s %s/metrics | grep taskevents_
  worker metrics:      curl -s %s/metrics | grep taskevents_
  dead letters kept:   curl -s %s/admin/deadletters
  worker's sidecar:    curl -s %s/v1.0/metadata
%sCtrl-C stops everything.
================================================================================
`, broker.Name, sys.Publisher.URL, sys.Publisher.OpsURL, sys.Workers[0].OpsURL, sys.Workers[0].URL, sys.WorkerSidecars[0].HTTPURL, traces)
	<-ctx.Done()
	return nil
}
