package harness

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// App is a running publisher or worker.
type App struct {
	*Process
	Port int
	URL  string
	// OpsURL serves the app's probes and metrics (its OPS_PORT).
	OpsURL string

	h    *Harness
	name string
	bin  string
	env  []string
}

// StartApp runs an app binary on port with env and waits until /readyz answers 200.
func (h *Harness) StartApp(ctx context.Context, name, bin string, port int, env []string) (*App, error) {
	a, err := h.newApp(name, bin, port, env)
	if err != nil {
		return nil, err
	}
	return a, a.launch(ctx)
}

func (h *Harness) newApp(name, bin string, port int, env []string) (*App, error) {
	ops, err := FreePort()
	if err != nil {
		return nil, err
	}
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "OPS_PORT="); ok {
			ops, _ = strconv.Atoi(v) // a fixed port asked for (make run); the later entry wins
		}
	}
	env = append([]string{"APP_PORT=" + strconv.Itoa(port), "LISTEN_HOST=127.0.0.1",
		"OPS_PORT=" + strconv.Itoa(ops), "OPS_LISTEN_HOST=127.0.0.1", "DRAIN_DELAY=0s"}, env...)
	a := &App{Port: port, URL: fmt.Sprintf("http://127.0.0.1:%d", port), OpsURL: fmt.Sprintf("http://127.0.0.1:%d", ops),
		h: h, name: name, bin: bin, env: env}
	return a, nil
}

func (a *App) launch(ctx context.Context) error {
	if err := a.start(); err != nil {
		return err
	}
	return a.waitReady(ctx)
}

func (a *App) start() error {
	p, err := a.h.start(a.name, environ(a.env...), a.bin)
	if err != nil {
		return err
	}
	a.Process = p
	return nil
}

func (a *App) waitReady(ctx context.Context) error {
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := WaitHTTP(wctx, a.URL+"/readyz", 200); err != nil {
		return fmt.Errorf("%s: %w\n%s", a.name, err, a.Tail(30))
	}
	return nil
}

// Setenv sets key for the app's next launch (Restart): the later entry wins.
func (a *App) Setenv(key, value string) {
	a.env = append(a.env, key+"="+value)
}

// Restart stops the app (if it still runs) and starts it again with the same port and
// environment: a fresh process, as after a crash or a pod restart. Lines() then holds only
// the new process's output; keep the old *Process to read what it logged before.
func (a *App) Restart(ctx context.Context) error {
	if err := a.Stop(20 * time.Second); err != nil {
		return err
	}
	return a.launch(ctx)
}

// SystemOptions choose the topology of one run.
type SystemOptions struct {
	Workers      int      // worker replicas, each with its own sidecar (default 1)
	PublisherEnv []string // extra environment for the publisher
	WorkerEnv    []string // extra environment for every worker (e.g. fault injection)
	DaprAPIToken string   // app → sidecar token, set on both sides when not empty
	AppAPIToken  string   // sidecar → app token, set on both sides when not empty
	// Subscriptions is the directory of Subscription files daprd loads, relative to the
	// repository root: "subscriptions" when empty, "subscriptions/bulk" for bulk subscribe.
	Subscriptions string
	// ComponentMetadata overrides entries of the broker component's metadata (for example
	// {"concurrency": "10"}); every name must exist in the component file.
	ComponentMetadata map[string]string
	// Jaeger, when set, receives every sidecar's spans (their tracing Configuration points at
	// it) and both apps' (OTEL_EXPORTER_OTLP_ENDPOINT).
	Jaeger *Jaeger
	// Fixed ports for `make run`; zero values pick free ports.
	PublisherPort, PublisherOpsPort, WorkerPort, WorkerOpsPort, PublisherDaprPort, WorkerDaprPort int
}

// System is the whole flow: broker, state store, publisher + sidecar, workers + sidecars.
type System struct {
	Broker *Broker
	// StateRedis is the state store's Redis: the broker itself when that is Redis.
	StateRedis       *Broker
	StateRedisAddr   string
	Publisher        *App
	PublisherSidecar *Sidecar
	Workers          []*App
	WorkerSidecars   []*Sidecar
}

// StartSystem starts the broker, then the worker side (so its consumer group exists before
// anything is published), then the publisher side.
func (h *Harness) StartSystem(ctx context.Context, b *Broker, o SystemOptions) (*System, error) {
	if o.Workers == 0 {
		o.Workers = 1
	}
	sys := &System{Broker: b, StateRedis: b}
	if b.Name != "redis" {
		// The state store stays on Redis whichever broker carries the events.
		r, err := h.StartRedis(ctx, 0)
		if err != nil {
			return nil, err
		}
		sys.StateRedis = r
	}
	sys.StateRedisAddr = sys.StateRedis.Overrides["redisHost"]
	components, err := h.ComponentsDirWith(b, sys.StateRedisAddr, o.ComponentMetadata)
	if err != nil {
		return nil, err
	}
	if o.Subscriptions == "" {
		o.Subscriptions = "subscriptions"
	}
	resources := []string{components, filepath.Join(h.Root, o.Subscriptions)}
	var sidecarEnv, appEnv []string
	otlp := ""
	if o.Jaeger != nil {
		otlp = o.Jaeger.OTLPHTTPAddr
		appEnv = append(appEnv, "OTEL_EXPORTER_OTLP_ENDPOINT="+o.Jaeger.OTLPEndpoint(), "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf")
	}
	tracingConfig, err := h.TracingConfig(otlp)
	if err != nil {
		return nil, err
	}
	if o.DaprAPIToken != "" {
		sidecarEnv = append(sidecarEnv, "DAPR_API_TOKEN="+o.DaprAPIToken)
		appEnv = append(appEnv, "DAPR_API_TOKEN="+o.DaprAPIToken)
	}
	if o.AppAPIToken != "" {
		sidecarEnv = append(sidecarEnv, "APP_API_TOKEN="+o.AppAPIToken)
		appEnv = append(appEnv, "APP_API_TOKEN="+o.AppAPIToken)
	}
	for i := range o.Workers {
		name := "worker"
		if o.Workers > 1 {
			name = fmt.Sprintf("worker-%d", i+1)
		}
		port := o.WorkerPort
		if i > 0 {
			port = 0 // a fixed port is for the first replica only
		}
		if port, err = OrFreePort(port); err != nil {
			return nil, err
		}
		// The worker calls its sidecar (state store, replays), so it needs the sidecar's
		// port before the sidecar, which waits for the app, starts.
		httpPort := 0
		if i == 0 {
			httpPort = o.WorkerDaprPort
		}
		if httpPort, err = OrFreePort(httpPort); err != nil {
			return nil, err
		}
		env := append(append([]string{"DAPR_HTTP_PORT=" + strconv.Itoa(httpPort)}, appEnv...), o.WorkerEnv...)
		if i == 0 && o.WorkerOpsPort != 0 {
			env = append(env, "OPS_PORT="+strconv.Itoa(o.WorkerOpsPort))
		}
		w, err := h.StartApp(ctx, name, h.Bins.Worker, port, env)
		if err != nil {
			return nil, err
		}
		s, err := h.StartSidecar(ctx, "daprd-"+name, SidecarOptions{
			AppID: h.Contract.WorkerAppID, AppPort: port, Resources: resources, Env: sidecarEnv, HTTPPort: httpPort,
			Config: tracingConfig})
		if err != nil {
			return nil, err
		}
		sys.Workers, sys.WorkerSidecars = append(sys.Workers, w), append(sys.WorkerSidecars, s)
	}
	if b.WaitSubscribers != nil {
		if err := b.WaitSubscribers(ctx, h.Contract.WorkerAppID, o.Workers); err != nil {
			return nil, err
		}
	}
	// The publisher's sidecar has an app channel to it, as in the chart: daprd waits for
	// the app's port, so the app starts first, and it is ready once its sidecar is.
	port, err := OrFreePort(o.PublisherPort)
	if err != nil {
		return nil, err
	}
	daprPort, err := OrFreePort(o.PublisherDaprPort)
	if err != nil {
		return nil, err
	}
	env := []string{"DAPR_HTTP_PORT=" + strconv.Itoa(daprPort), "READINESS_INTERVAL=200ms"}
	if o.PublisherOpsPort != 0 {
		env = append(env, "OPS_PORT="+strconv.Itoa(o.PublisherOpsPort))
	}
	env = append(append(env, appEnv...), o.PublisherEnv...)
	p, err := h.newApp("publisher", h.Bins.Publisher, port, env)
	if err != nil {
		return nil, err
	}
	if err := p.start(); err != nil {
		return nil, err
	}
	sys.Publisher = p
	s, err := h.StartSidecar(ctx, "daprd-publisher", SidecarOptions{
		AppID: h.Contract.PublisherAppID, AppPort: port, Resources: resources, Env: sidecarEnv, HTTPPort: daprPort,
		Config: tracingConfig})
	if err != nil {
		return nil, err
	}
	sys.PublisherSidecar = s
	if err := p.waitReady(ctx); err != nil {
		return nil, err
	}
	return sys, nil
}
