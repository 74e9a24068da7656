package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/taskevents/taskevents/tools/harness"
)

// bench is one run: the rig, the apps, and what was measured.
type bench struct {
	cfg    Config
	rig    *rig
	rdb    *redis.Client
	stdout io.Writer
	dir    string

	pubDaprd    *sidecar
	pubDaprdURL string
	publishers  map[string]*app // ours, ours-traced, ours-single, gosdk, python
	// otlp receives the spans of ours-traced.
	otlp    *otlpSink
	workers map[string]handler
	logs    map[string]*handledLog

	pubRuns []pubRun
	sweep   []SweepPoint
	drains  []DrainRun
	e2e     map[string]e2eResult // by worker
	notes   []string
	// The in-memory worker's resident set once its dedupe window is full, MB.
	dedupeRSS, dedupeHWM float64
}

// pubRun is one measured wrk run against a publisher (or daprd directly).
type pubRun struct {
	Variant     string  `json:"variant"`
	Rep         int     `json:"rep"`
	Connections int     `json:"connections"`
	RPS         float64 `json:"rps"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	Errors      int64   `json:"errors"`
	// CPU per event, µs, of the publisher app and of the publishers' daprd.
	AppCPUus   float64 `json:"app_cpu_us"`
	DaprdCPUus float64 `json:"daprd_cpu_us"`
}

// SweepPoint is one point of the throughput-against-concurrency plot.
type SweepPoint struct {
	Variant     string  `json:"variant"`
	Connections int     `json:"connections"`
	RPS         float64 `json:"rps"`
}

type e2eResult struct {
	Sent, Accepted, Handled int
	P50, P99, Max           float64 // ms
}

// Run measures everything, prints a line per measure to stdout and writes the results.
func Run(ctx context.Context, cfg Config, stdout io.Writer) (err error) {
	began := time.Now()
	if cfg.Root == "" {
		wd, err := os.Getwd()
		if err != nil {
			return err
		}
		if cfg.Root, err = harness.FindRoot(wd); err != nil {
			return err
		}
	}
	if cfg.Out == "" {
		cfg.Out = filepath.Join(cfg.Root, "bin", "bench")
	}
	if cfg.Plots == "" {
		cfg.Plots = filepath.Join(cfg.Root, "docs", "benchmarks")
	}
	if cfg.PythonDir == "" {
		cfg.PythonDir = filepath.Join(cfg.Root, "tools", "bench", "python")
	}
	// Both output directories must be writable before minutes of measuring, not after.
	for _, d := range []string{cfg.Out, cfg.Plots} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return fmt.Errorf("BENCH_OUT / BENCH_PLOTS: %w", err)
		}
	}
	if _, err := exec.LookPath(cfg.Wrk); err != nil {
		return fmt.Errorf("wrk is not installed (WRK=%s): run `make prereqs`", cfg.Wrk)
	}
	dir, err := os.MkdirTemp("", "taskevents-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	r, err := newRig(ctx, cfg, dir)
	if err != nil {
		return err
	}
	b := &bench{cfg: cfg, rig: r, stdout: stdout, dir: dir, publishers: map[string]*app{},
		workers: map[string]handler{}, logs: map[string]*handledLog{}, e2e: map[string]e2eResult{}}
	b.rdb = redis.NewClient(&redis.Options{Addr: r.redisAddr})
	defer func() {
		err = errors.Join(err, b.rdb.Close(), r.Close())
	}()
	if err := b.startAll(ctx); err != nil {
		return err
	}
	phases := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"publishers at " + strconv.Itoa(cfg.Connections) + " connections", b.publisherPhase},
		{"latency at 1 connection", b.latencyPhase},
		{"throughput against concurrency", b.sweepPhase},
		{"drains", b.drainPhase},
		{"end to end at " + strconv.Itoa(cfg.E2ERate) + "/s", b.e2ePhase},
		{"dedupe window", b.dedupePhase},
	}
	// Peak RSS (VmHWM) of each app after the fixed-concurrency phases and drains, and again
	// after the open-loop run, where a system that falls behind holds more in flight.
	rss := map[string]map[string]float64{}
	for _, p := range phases {
		start := time.Now()
		b.logf("bench: %s...", p.name)
		if err := p.fn(ctx); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		b.logf("bench: %s done in %s", p.name, time.Since(start).Round(time.Second))
		if p.name == "drains" || strings.HasPrefix(p.name, "end to end") {
			m, err := b.readRSS()
			if err != nil {
				return err
			}
			rss[map[bool]string{true: "load", false: "open-loop"}[p.name == "drains"]] = m
		}
	}
	results := b.results(rss)
	rep := Report{Machine: readMachine(), Settings: settings(cfg), Results: results, Sweep: b.sweep,
		Drains: b.drains, PeakRSS: rss, Seconds: time.Since(began).Seconds()}
	raw, _ := json.Marshal(b.pubRuns)
	_ = os.WriteFile(filepath.Join(cfg.Out, "publisher-runs.json"), raw, 0o600)
	if err := rep.write(cfg.Out); err != nil {
		return err
	}
	if err := b.plots(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\n%s\n", Markdown(results))
	for _, n := range b.notes {
		fmt.Fprintln(stdout, "note: "+n)
	}
	for _, res := range results {
		fmt.Fprintln(stdout, res.Line())
	}
	fmt.Fprintf(stdout, "bench: %s measured in %s; results in %s, plots in %s\n",
		rep.Machine, time.Since(began).Round(time.Second), cfg.Out, cfg.Plots)
	return nil
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.stdout, format+"\n", args...)
}

func (b *bench) note(format string, args ...any) {
	b.notes = append(b.notes, fmt.Sprintf(format, args...))
}

// handledLog counts a worker's "EVENT RECEIVED" SUCCESS lines and, while record is set,
// when each task's line arrived: the handled time of the end-to-end measure.
type handledLog struct {
	mu     sync.Mutex
	count  int
	record map[string]time.Time
}

func (l *handledLog) onLine(at time.Time, line string) {
	if !strings.Contains(line, `"EVENT RECEIVED"`) {
		return
	}
	var e struct {
		Msg       string `json:"message"`
		TaskID    string `json:"task_id"`
		Outcome   string `json:"outcome"`
		Duplicate bool   `json:"duplicate"`
	}
	if json.Unmarshal([]byte(line), &e) != nil || e.Msg != "EVENT RECEIVED" || e.Outcome != "SUCCESS" || e.Duplicate {
		return
	}
	l.mu.Lock()
	l.count++
	if l.record != nil {
		l.record[e.TaskID] = at
	}
	l.mu.Unlock()
}

func (l *handledLog) handled() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.count
}

// startAll starts the publishers' daprd, every publisher and every handler. Each worker
// gets a fixed port for its sidecar, which starts only for its drains.
func (b *bench) startAll(ctx context.Context) error {
	cfg := b.cfg
	var err error
	if b.pubDaprd, err = b.rig.startSidecar(ctx, "daprd-publishers", "task-api", 0, 0, modeSingle); err != nil {
		return err
	}
	b.pubDaprdURL = "http://127.0.0.1:" + strconv.Itoa(b.pubDaprd.httpPort)
	daprEnv := []string{"DAPR_HTTP_PORT=" + strconv.Itoa(b.pubDaprd.httpPort), "DAPR_GRPC_PORT=" + strconv.Itoa(b.pubDaprd.grpcPort)}
	if b.publishers["ours"], err = b.rig.startApp(ctx, "publisher", "", append(daprEnv, "PUBLISH_COALESCE=true"), nil, cfg.PublisherBin); err != nil {
		return err
	}
	if b.publishers["ours-single"], err = b.rig.startApp(ctx, "publisher-single", "", append(daprEnv, "PUBLISH_COALESCE=false"), nil, cfg.PublisherBin); err != nil {
		return err
	}
	// ours with tracing on: every request's two spans exported over OTLP/HTTP.
	if b.otlp, err = startOTLPSink(ctx); err != nil {
		return err
	}
	b.rig.onClose(b.otlp.Close)
	if b.publishers["ours-traced"], err = b.rig.startApp(ctx, "publisher-traced", "", append(daprEnv, "PUBLISH_COALESCE=true",
		"OTEL_EXPORTER_OTLP_ENDPOINT="+b.otlp.url), nil, cfg.PublisherBin); err != nil {
		return err
	}
	if cfg.GosdkBin != "" {
		if b.publishers["gosdk"], err = b.rig.startApp(ctx, "gosdk-publisher", "", daprEnv, nil, cfg.GosdkBin); err != nil {
			return err
		}
	}
	if cfg.PythonUvicorn != "" {
		if b.publishers["python"], err = b.rig.startApp(ctx, "python-publisher", filepath.Join(cfg.PythonDir, "publisher"), daprEnv, nil,
			cfg.PythonUvicorn, "main:app", "--host", "127.0.0.1", "--port", "{port}"); err != nil {
			return err
		}
	}
	for _, w := range []struct{ name, store string }{{"worker", "memory"}, {"worker-ledger", "statestore"}} {
		dp, err := harness.FreePort()
		if err != nil {
			return err
		}
		ops, err := harness.FreePort()
		if err != nil {
			return err
		}
		l := &handledLog{}
		a, err := b.rig.startApp(ctx, w.name, "", []string{"DAPR_HTTP_PORT=" + strconv.Itoa(dp), "OPS_PORT=" + strconv.Itoa(ops),
			"DEDUPE_STORE=" + w.store}, l.onLine, cfg.WorkerBin)
		if err != nil {
			return err
		}
		b.workers[w.name], b.logs[w.name] = handler{name: w.name, app: a, daprHTTPPort: dp}, l
	}
	if cfg.NoopWorkerBin != "" {
		a, err := b.rig.startApp(ctx, "noop-worker", "", nil, nil, cfg.NoopWorkerBin)
		if err != nil {
			return err
		}
		b.workers["noop"] = handler{name: "noop", app: a}
	}
	if cfg.PythonUvicorn != "" {
		a, err := b.rig.startApp(ctx, "python-worker", filepath.Join(cfg.PythonDir, "worker"), nil, nil,
			cfg.PythonUvicorn, "main:app", "--host", "127.0.0.1", "--port", "{port}")
		if err != nil {
			return err
		}
		b.workers["python"] = handler{name: "python", app: a, programmatic: true}
	}
	return nil
}

// target is a URL wrk loads and the process behind it (nil for daprd itself).
func (b *bench) target(variant string) (url, script string, app *app) {
	if variant == "direct" {
		return b.pubDaprdURL + "/v1.0/publish/pubsub/" + topic, "direct", nil
	}
	a := b.publishers[variant]
	return a.url + "/tasks", "tasks", a
}

// wrkOnce runs a warm-up (if warmup > 0), then one measured run of variant at conns,
// with the CPU of the app and of the publishers' daprd sampled over the measured run.
func (b *bench) wrkOnce(ctx context.Context, variant string, conns int, d, warmup time.Duration) (pubRun, error) {
	url, kind, a := b.target(variant)
	tag := fmt.Sprintf("%08x", rand.Uint32())
	tasks, direct, err := writeScripts(b.dir, tag, "/v1.0/publish/pubsub/"+topic)
	if err != nil {
		return pubRun{}, err
	}
	script := tasks
	if kind == "direct" {
		script = direct
	}
	if warmup > 0 {
		if _, err := runWrk(ctx, b.cfg.Wrk, wrkRun{URL: url, Connections: conns, Duration: warmup, Script: script}); err != nil {
			return pubRun{}, err
		}
	}
	pids := map[string]int{"daprd": b.pubDaprd.pid()}
	if a != nil {
		pids["app"] = a.pid()
	}
	cpu, err := newCPUMeter(pids)
	if err != nil {
		return pubRun{}, err
	}
	res, err := runWrk(ctx, b.cfg.Wrk, wrkRun{URL: url, Connections: conns, Duration: d, Script: script})
	if err != nil {
		return pubRun{}, err
	}
	used, err := cpu.used()
	if err != nil {
		return pubRun{}, err
	}
	// The stream is not the subject here; emptied, it cannot grow past memory.
	if err := b.rdb.XTrimMaxLen(ctx, topic, 0).Err(); err != nil {
		return pubRun{}, fmt.Errorf("XTRIM: %w", err)
	}
	run := pubRun{Variant: variant, Connections: conns, RPS: res.OKPerSecond(),
		P50ms: ms(res.Latency["50%"]), P99ms: ms(res.Latency["99%"]), Errors: res.Non2xx + res.SocketErrors}
	if ok := res.OK(); ok > 0 {
		run.AppCPUus = float64(used["app"].Microseconds()) / float64(ok)
		run.DaprdCPUus = float64(used["daprd"].Microseconds()) / float64(ok)
	}
	if run.Errors > 0 {
		b.note("%s at %d connections: %d of %d requests failed", variant, conns, run.Errors, res.Requests)
	}
	return run, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (b *bench) variants(names ...string) []string {
	var out []string
	for _, n := range names {
		if n == "direct" || b.publishers[n] != nil {
			out = append(out, n)
		}
	}
	return out
}

// publisherPhase: every publisher and direct publishes at BENCH_CONNECTIONS, interleaved
// A B C … A B C … for BENCH_REPS rounds.
func (b *bench) publisherPhase(ctx context.Context) error {
	for rep := range b.cfg.Reps {
		for _, v := range b.variants("ours", "ours-traced", "direct", "gosdk", "python", "ours-single") {
			run, err := b.wrkOnce(ctx, v, b.cfg.Connections, b.cfg.Duration, b.cfg.Warmup)
			if err != nil {
				return err
			}
			run.Rep = rep
			b.pubRuns = append(b.pubRuns, run)
			b.logf("  round %d %-12s %8.0f/s  p50 %.2f ms  cpu/event app %.0f µs daprd %.0f µs", rep+1, v, run.RPS, run.P50ms, run.AppCPUus, run.DaprdCPUus)
		}
	}
	return nil
}

// latencyPhase: ours against direct at one connection, where nothing can coalesce.
func (b *bench) latencyPhase(ctx context.Context) error {
	for rep := range b.cfg.Reps {
		for _, v := range []string{"ours", "direct"} {
			run, err := b.wrkOnce(ctx, v, 1, b.cfg.Duration, b.cfg.Warmup)
			if err != nil {
				return err
			}
			run.Rep = rep
			b.pubRuns = append(b.pubRuns, run)
			b.logf("  round %d %-12s p50 %.3f ms  p99 %.3f ms", rep+1, v, run.P50ms, run.P99ms)
		}
	}
	return nil
}

func (b *bench) sweepPhase(ctx context.Context) error {
	for _, c := range b.cfg.Sweep {
		for _, v := range b.variants("ours", "direct", "gosdk", "python") {
			run, err := b.wrkOnce(ctx, v, c, b.cfg.SweepDuration, 0)
			if err != nil {
				return err
			}
			b.sweep = append(b.sweep, SweepPoint{Variant: v, Connections: c, RPS: run.RPS})
		}
		b.logf("  %3d connections done", c)
	}
	return nil
}

// drainPhase: every handler drains the same backlog, interleaved, in both delivery modes.
func (b *bench) drainPhase(ctx context.Context) error {
	type job struct {
		handler, mode string
		n             int
	}
	var jobs []job
	for _, h := range []string{"worker", "noop"} {
		for _, m := range []string{modeSingle, modeBulk} {
			jobs = append(jobs, job{h, m, b.cfg.Backlog})
		}
	}
	// The durable ledger claims and completes each event through the state store and
	// drains at a fraction of the in-memory rate: half the backlog keeps its rounds short.
	jobs = append(jobs, job{"worker-ledger", modeSingle, b.cfg.Backlog / 2}, job{"python", modeSingle, b.cfg.PythonBacklog})
	for rep := range b.cfg.Reps {
		for _, j := range jobs {
			h, ok := b.workers[j.handler]
			if !ok {
				continue
			}
			run, err := b.drain(ctx, h, j.mode, j.n)
			if err != nil {
				return err
			}
			run.Rep = rep
			b.drains = append(b.drains, run)
			b.logf("  round %d %-13s %-6s %6.0f events/s  cpu/event app %.0f µs daprd %.0f µs", rep+1, j.handler, j.mode, run.Rate, run.AppCPUus, run.DaprdCPUus)
		}
	}
	return nil
}

// e2ePhase: the open-loop generator, a second process, POSTs tasks to our publisher at a
// fixed rate while a worker handles them (single delivery); a task's latency runs from
// when its request was due to when the worker's log line for it arrived. Once with the
// durable ledger (the default), once with the in-memory dedupe.
func (b *bench) e2ePhase(ctx context.Context) error {
	for _, name := range []string{"worker-ledger", "worker"} {
		res, err := b.e2eRun(ctx, name)
		if err != nil {
			return err
		}
		b.e2e[name] = res
		if res.Handled < res.Sent {
			b.note("end to end (%s): %d sent, %d accepted, %d handled within 60s", name, res.Sent, res.Accepted, res.Handled)
		}
		b.logf("  %-13s %d sent, %d handled: p50 %.2f ms p99 %.2f ms max %.2f ms", name, res.Sent, res.Handled, res.P50, res.P99, res.Max)
	}
	return nil
}

func (b *bench) e2eRun(ctx context.Context, name string) (e2eResult, error) {
	var res e2eResult
	w := b.workers[name]
	l := b.logs[name]
	if err := quiesce(ctx, b.rdb); err != nil {
		return res, err
	}
	if err := resetStream(ctx, b.rdb); err != nil {
		return res, err
	}
	sc, err := b.rig.startSidecar(ctx, "daprd-e2e-"+name, "task-worker", w.daprHTTPPort, w.app.port, modeSingle)
	if err != nil {
		return res, err
	}
	defer func() { _ = sc.stop(15 * time.Second) }()
	// daprd is healthy before its subscription reads: wait for one task to go through.
	base := l.handled()
	probe := time.Now().Add(30 * time.Second)
	for l.handled() == base {
		if time.Now().After(probe) {
			return res, fmt.Errorf("no task reached %s within 30s of its sidecar starting\n%s", name, sc.Tail())
		}
		if err := postTask(ctx, b.publishers["ours"].url+"/tasks"); err != nil {
			return res, err
		}
		for wait := time.Now().Add(2 * time.Second); l.handled() == base && time.Now().Before(wait); {
			time.Sleep(20 * time.Millisecond)
		}
	}
	l.mu.Lock()
	l.record = map[string]time.Time{}
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		l.record = nil
		l.mu.Unlock()
	}()
	exe, err := os.Executable()
	if err != nil {
		return res, err
	}
	out := filepath.Join(b.dir, "loadgen.txt")
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), "BENCH_ROLE=loadgen", "LOADGEN_URL="+b.publishers["ours"].url+"/tasks",
		"LOADGEN_RATE="+strconv.Itoa(b.cfg.E2ERate), "LOADGEN_DURATION="+b.cfg.E2EDuration.String(), "LOADGEN_OUT="+out,
		fmt.Sprintf("LOADGEN_TAG=%08x", rand.Uint32()))
	if msg, err := cmd.CombinedOutput(); err != nil {
		return res, fmt.Errorf("loadgen: %w\n%s", err, msg)
	}
	f, err := os.Open(out)
	if err != nil {
		return res, err
	}
	recs, err := ParseLoadgen(f)
	_ = f.Close()
	if err != nil {
		return res, err
	}
	want := map[string]time.Time{}
	for _, r := range recs {
		if r.Status == 202 {
			want[r.ID] = r.Due
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	var lat []float64
	for {
		l.mu.Lock()
		lat = lat[:0]
		for id, due := range want {
			if at, ok := l.record[id]; ok {
				lat = append(lat, ms(at.Sub(due)))
			}
		}
		l.mu.Unlock()
		if len(lat) == len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	slices.Sort(lat)
	res = e2eResult{Sent: len(recs), Accepted: len(want), Handled: len(lat), P50: Percentile(lat, 50), P99: Percentile(lat, 99)}
	if len(lat) > 0 {
		res.Max = lat[len(lat)-1]
	}
	return res, nil
}

// dedupePhase tops the in-memory worker up to BENCH_DEDUPE_IDS distinct ids handled, so
// its dedupe window is full when its memory is read.
func (b *bench) dedupePhase(ctx context.Context) error {
	l := b.logs["worker"]
	if left := b.cfg.DedupeIDs - l.handled(); left > 0 {
		if _, err := b.drain(ctx, b.workers["worker"], modeSingle, left); err != nil {
			return err
		}
	}
	pid := b.workers["worker"].app.pid()
	var err error
	if b.dedupeRSS, err = ProcessMemMB(pid, "VmRSS"); err != nil {
		return err
	}
	if b.dedupeHWM, err = ProcessMemMB(pid, "VmHWM"); err != nil {
		return err
	}
	b.logf("  worker has handled %d distinct events: VmRSS %.1f MB, VmHWM %.1f MB", l.handled(), b.dedupeRSS, b.dedupeHWM)
	return nil
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

func postTask(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(`{"title":"probe"}`))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return fmt.Errorf("probe task: %w", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("probe task: %s", resp.Status)
	}
	return nil
}

// readRSS returns each app's peak resident set (VmHWM) so far, MB.
func (b *bench) readRSS() (map[string]float64, error) {
	procs := map[string]*proc{"publisher": b.publishers["ours"].proc, "publisher-single": b.publishers["ours-single"].proc,
		"publisher-traced": b.publishers["ours-traced"].proc,
		"worker-ledger":    b.workers["worker-ledger"].app.proc, "worker": b.workers["worker"].app.proc}
	out := map[string]float64{}
	for name, p := range procs {
		v, err := ProcessMemMB(p.pid(), "VmHWM")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out[name] = v
	}
	return out, nil
}

func settings(c Config) map[string]any {
	return map[string]any{"BENCH_DURATION": c.Duration.String(), "BENCH_WARMUP": c.Warmup.String(), "BENCH_REPS": c.Reps,
		"BENCH_CONNECTIONS": c.Connections, "BENCH_SWEEP": c.Sweep, "BENCH_SWEEP_DURATION": c.SweepDuration.String(),
		"BENCH_BACKLOG": c.Backlog, "BENCH_PYTHON_BACKLOG": c.PythonBacklog, "BENCH_BULK_MAX_MESSAGES": c.BulkMaxMessages,
		"BENCH_BULK_AWAIT_MS": c.BulkAwaitMs, "BENCH_E2E_RATE": c.E2ERate, "BENCH_E2E_DURATION": c.E2EDuration.String(),
		"BENCH_DEDUPE_IDS": c.DedupeIDs}
}
