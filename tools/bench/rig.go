package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/taskevents/taskevents/tools/harness"
	"gopkg.in/yaml.v3"
)

// Delivery modes of the worker's subscription.
const (
	modeSingle = "single"
	modeBulk   = "bulk"
	modePython = "python" // the Python worker's programmatic subscription: no declarative one
)

// rig is the bench's processes: one Redis, daprd sidecars and the apps, on free loopback
// ports. Close stops everything it started.
type rig struct {
	cfg Config
	h   *harness.Harness
	dir string

	redis     *harness.Broker
	redisAddr string
	resources map[string]string // delivery mode → --resources-path directory

	mu      sync.Mutex
	procs   []*proc
	closers []func() error
}

// onClose runs fn when the rig closes, after its processes have stopped.
func (r *rig) onClose(fn func() error) {
	r.mu.Lock()
	r.closers = append(r.closers, fn)
	r.mu.Unlock()
}

func newRig(ctx context.Context, cfg Config, dir string) (*rig, error) {
	h, err := harness.New(cfg.Root, dir, harness.Binaries{Daprd: cfg.Daprd, Publisher: cfg.PublisherBin, Worker: cfg.WorkerBin}, io.Discard)
	if err != nil {
		return nil, err
	}
	r := &rig{cfg: cfg, h: h, dir: dir, resources: map[string]string{}}
	if r.redis, err = h.StartRedis(ctx, 0); err != nil {
		return nil, errors.Join(err, h.Close())
	}
	r.redisAddr = r.redis.Overrides["redisHost"]
	for _, mode := range []string{modeSingle, modeBulk, modePython} {
		d, err := r.writeResources(mode)
		if err != nil {
			return nil, errors.Join(err, r.Close())
		}
		r.resources[mode] = d
	}
	return r, nil
}

// Close stops every process, newest first, then Redis.
func (r *rig) Close() error {
	r.mu.Lock()
	procs, closers := r.procs, r.closers
	r.procs, r.closers = nil, nil
	r.mu.Unlock()
	var errs []error
	for i := len(procs) - 1; i >= 0; i-- {
		errs = append(errs, procs[i].stop(15*time.Second))
	}
	for _, fn := range closers {
		errs = append(errs, fn())
	}
	return errors.Join(append(errs, r.h.Close())...)
}

func (r *rig) start(name, dir string, env []string, onLine func(time.Time, string), bin string, args ...string) (*proc, error) {
	p, err := startProc(name, dir, env, onLine, bin, args...)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.procs = append(r.procs, p)
	r.mu.Unlock()
	return p, nil
}

// writeResources copies components/ (pub/sub, state store, resiliency) with redisHost
// patched, and the Subscriptions of the mode (subscriptions). The bulk mode raises the
// Redis component's concurrency to at least the Subscription's maxMessagesCount. The Python
// mode has no task-events Subscription: the Python worker subscribes programmatically,
// and a declarative one would replace its route.
func (r *rig) writeResources(mode string) (string, error) {
	dir := filepath.Join(r.dir, "resources-"+mode)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", err
	}
	comp := filepath.Join(r.cfg.Root, "components")
	overrides := map[string]string{"redisHost": r.redisAddr,
		// A backlog bigger than the cluster's stream bound must not be trimmed under the
		// drain being timed.
		"maxLenApprox": "10000000"}
	raw, err := os.ReadFile(filepath.Join(comp, "redis.yaml"))
	if err != nil {
		return "", err
	}
	if mode == modeBulk {
		// Below maxMessagesCount deliveries in flight a batch never fills, and every one
		// waits out maxAwaitDurationMs.
		conc, err := componentValue(raw, "concurrency")
		if err != nil {
			return "", fmt.Errorf("components/redis.yaml: %w", err)
		}
		subs, err := r.subscriptions(modeBulk)
		if err != nil {
			return "", err
		}
		want, err := bulkMaxMessages(subs["task-events.yaml"])
		if err != nil {
			return "", err
		}
		if n, _ := strconv.Atoi(conc); n < want {
			overrides["concurrency"] = strconv.Itoa(want)
		}
	}
	if raw, err = harness.OverrideMetadata(raw, overrides); err != nil {
		return "", fmt.Errorf("components/redis.yaml: %w", err)
	}
	files := map[string][]byte{"redis.yaml": raw}
	state, err := os.ReadFile(filepath.Join(comp, "statestore.yaml"))
	if err != nil {
		return "", err
	}
	if files["statestore.yaml"], err = harness.OverrideMetadata(state, map[string]string{"redisHost": r.redisAddr}); err != nil {
		return "", fmt.Errorf("components/statestore.yaml: %w", err)
	}
	if files["resiliency.yaml"], err = os.ReadFile(filepath.Join(comp, "resiliency.yaml")); err != nil {
		return "", err
	}
	if mode != modePython {
		subs, err := r.subscriptions(mode)
		if err != nil {
			return "", err
		}
		for name, raw := range subs {
			files["sub-"+name] = raw
		}
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o600); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// componentValue returns spec.metadata[name].value of a Component manifest.
func componentValue(manifest []byte, name string) (string, error) {
	var c struct {
		Spec struct {
			Metadata []struct {
				Name  string `yaml:"name"`
				Value string `yaml:"value"`
			} `yaml:"metadata"`
		} `yaml:"spec"`
	}
	if err := yaml.Unmarshal(manifest, &c); err != nil {
		return "", err
	}
	for _, m := range c.Spec.Metadata {
		if m.Name == name {
			return m.Value, nil
		}
	}
	return "", fmt.Errorf("no metadata entry %q", name)
}

// subscriptions returns the Subscription manifests of mode by file name: subscriptions/
// for single delivery; for bulk, the project's bulk variant (subscriptions/bulk/) when it
// exists, else subscriptions/ with bulkSubscribe added. BENCH_BULK_MAX_MESSAGES and
// BENCH_BULK_AWAIT_MS, when set, replace the variant's batch settings.
func (r *rig) subscriptions(mode string) (map[string][]byte, error) {
	dir := filepath.Join(r.cfg.Root, "subscriptions")
	bulkDir := filepath.Join(dir, "bulk")
	useVariant := false
	if mode == modeBulk {
		if _, err := os.Stat(filepath.Join(bulkDir, "task-events.yaml")); err == nil {
			dir, useVariant = bulkDir, true
		}
	}
	paths, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for _, path := range paths {
		name := filepath.Base(path)
		if name == "kustomization.yaml" {
			continue
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		if mode == modeBulk && name == "task-events.yaml" {
			maxMessages, awaitMs := r.cfg.BulkMaxMessages, r.cfg.BulkAwaitMs
			if !useVariant {
				maxMessages, awaitMs = cmp.Or(maxMessages, 100), cmp.Or(awaitMs, 50)
			}
			if maxMessages != 0 || awaitMs != 0 {
				if raw, err = enableBulk(raw, maxMessages, awaitMs); err != nil {
					return nil, fmt.Errorf("%s: %w", path, err)
				}
			}
		}
		out[name] = raw
	}
	return out, nil
}

// bulkMaxMessages reads spec.bulkSubscribe.maxMessagesCount (daprd's default: 100).
func bulkMaxMessages(manifest []byte) (int, error) {
	var s struct {
		Spec struct {
			BulkSubscribe struct {
				MaxMessagesCount int `yaml:"maxMessagesCount"`
			} `yaml:"bulkSubscribe"`
		} `yaml:"spec"`
	}
	if err := yaml.Unmarshal(manifest, &s); err != nil {
		return 0, fmt.Errorf("bulk Subscription: %w", err)
	}
	return cmp.Or(s.Spec.BulkSubscribe.MaxMessagesCount, 100), nil
}

// enableBulk sets spec.bulkSubscribe (enabled, and each of maxMessages and awaitMs that is
// not 0), keeping what the manifest already sets otherwise. on a Subscription manifest.
func enableBulk(manifest []byte, maxMessages, awaitMs int) ([]byte, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(manifest, &doc); err != nil {
		return nil, err
	}
	spec, ok := doc["spec"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("no spec")
	}
	bulk, _ := spec["bulkSubscribe"].(map[string]any)
	if bulk == nil {
		bulk = map[string]any{}
	}
	bulk["enabled"] = true
	if maxMessages != 0 {
		bulk["maxMessagesCount"] = maxMessages
	}
	if awaitMs != 0 {
		bulk["maxAwaitDurationMs"] = awaitMs
	}
	spec["bulkSubscribe"] = bulk
	return yaml.Marshal(doc)
}

// sidecar is a running daprd.
type sidecar struct {
	*proc
	httpPort, grpcPort int
}

// startSidecar runs daprd for appID. appPort 0 means no app channel (the publishers').
// The worker sidecars run without app health checks: the anchors (the no-op and the
// Python handler) serve no health route, and all handlers must get the same delivery.
func (r *rig) startSidecar(ctx context.Context, name, appID string, httpPort, appPort int, mode string) (*sidecar, error) {
	var err error
	if httpPort, err = harness.OrFreePort(httpPort); err != nil {
		return nil, err
	}
	grpcPort, err := harness.FreePort()
	if err != nil {
		return nil, err
	}
	metrics, err := harness.FreePort()
	if err != nil {
		return nil, err
	}
	args := []string{"--app-id", appID, "--mode", "standalone", "--log-level", "warn",
		"--dapr-listen-addresses", "127.0.0.1",
		"--dapr-http-port", strconv.Itoa(httpPort), "--dapr-grpc-port", strconv.Itoa(grpcPort),
		"--dapr-internal-grpc-listen-address", "127.0.0.1",
		"--metrics-port", strconv.Itoa(metrics), "--metrics-listen-address", "127.0.0.1",
		"--dapr-graceful-shutdown-seconds", "2",
		"--resources-path", r.resources[mode]}
	if appPort != 0 {
		args = append(args, "--app-port", strconv.Itoa(appPort), "--app-protocol", "http")
		if mode != modePython {
			// As the chart: routing comes only from subscriptions/.
			args = append(args, "--disable-init-endpoints", "subscribe")
		}
	}
	p, err := r.start(name, r.dir, os.Environ(), nil, r.cfg.Daprd, args...)
	if err != nil {
		return nil, err
	}
	s := &sidecar{proc: p, httpPort: httpPort, grpcPort: grpcPort}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := harness.WaitHTTP(wctx, fmt.Sprintf("http://127.0.0.1:%d/v1.0/healthz", httpPort), 204); err != nil {
		return nil, fmt.Errorf("%s: %w\n%s", name, err, p.Tail())
	}
	return s, nil
}

// app is a running publisher, worker or anchor.
type app struct {
	*proc
	port int
	url  string
}

// startApp runs bin with env on a free port (APP_PORT, plus what env sets) and waits until
// the port accepts connections: the anchors have no common readiness route.
func (r *rig) startApp(ctx context.Context, name, dir string, env []string, onLine func(time.Time, string), bin string, args ...string) (*app, error) {
	port, err := harness.FreePort()
	if err != nil {
		return nil, err
	}
	for i, a := range args {
		if a == "{port}" {
			args[i] = strconv.Itoa(port)
		}
	}
	// OPS_PORT=0: the publishers run side by side and would all take the default 8003;
	// env may name a port of its own (the workers do).
	env = append(append(withoutOTel(os.Environ()), "APP_PORT="+strconv.Itoa(port), "LISTEN_HOST=127.0.0.1",
		"OPS_PORT=0", "OPS_LISTEN_HOST=127.0.0.1", "DRAIN_DELAY=0s"), env...)
	p, err := r.start(name, dir, env, onLine, bin, args...)
	if err != nil {
		return nil, err
	}
	a := &app{proc: p, port: port, url: "http://127.0.0.1:" + strconv.Itoa(port)}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if err := p.alive(); err != nil {
			return nil, err
		}
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err == nil {
			_ = c.Close()
			return a, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s never listened on %d:\n%s", name, port, p.Tail())
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// withoutOTel drops the OTEL_* variables of the bench's own environment: an endpoint
// exported in the shell would turn tracing on in every app, and only ours-traced traces.
func withoutOTel(environ []string) []string {
	out := make([]string, 0, len(environ))
	for _, kv := range environ {
		if !strings.HasPrefix(kv, "OTEL_") {
			out = append(out, kv)
		}
	}
	return out
}
