package flows

// Bulk subscribe (subscriptions/bulk): daprd delivers batches to /events/todo and the worker
// answers one status per entry. Checked through real daprd on Redis and Kafka, and held
// together with the component settings it depends on, in components/ and in the chart.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"gopkg.in/yaml.v3"

	"github.com/taskevents/taskevents/e2e/internal/helmchart"
	"github.com/taskevents/taskevents/e2e/internal/suite"
	"github.com/taskevents/taskevents/tools/harness"
)

// bulkSubscriptions is the bulk-subscribe variant's directory, relative to the root.
const bulkSubscriptions = "subscriptions/bulk"

// bulkConfig is spec.bulkSubscribe of a Subscription.
type bulkConfig struct {
	Enabled            bool `yaml:"enabled"`
	MaxMessagesCount   int  `yaml:"maxMessagesCount"`
	MaxAwaitDurationMs int  `yaml:"maxAwaitDurationMs"`
}

func readYAML(t *testing.T, path string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

// The bulk variant is the base subscriptions plus spec.bulkSubscribe, nothing else: the
// routes, dead-letter topic and scopes cannot drift apart. Its kustomization lists every
// file in the directory, and daprd can load the directory as it is.
func TestBulkSubscriptionVariant(t *testing.T) {
	dir := filepath.Join(suite.Root, bulkSubscriptions)
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, f := range files {
		name := filepath.Base(f)
		if name == "kustomization.yaml" {
			for _, r := range readYAML(t, f)["resources"].([]any) {
				listed = append(listed, r.(string))
			}
			continue
		}
		bulk, base := readYAML(t, f), readYAML(t, filepath.Join(suite.Root, "subscriptions", name))
		spec, _ := bulk["spec"].(map[string]any)
		if name == "task-events.yaml" {
			b, _ := yaml.Marshal(spec["bulkSubscribe"])
			var bc bulkConfig
			if err := yaml.Unmarshal(b, &bc); err != nil || !bc.Enabled || bc.MaxMessagesCount < 2 || bc.MaxAwaitDurationMs < 1 {
				t.Errorf("%s: bulkSubscribe = %+v (%v), want enabled with maxMessagesCount > 1 and maxAwaitDurationMs set", name, bc, err)
			}
			delete(spec, "bulkSubscribe")
		}
		if !reflect.DeepEqual(bulk, base) {
			t.Errorf("%s/%s differs from subscriptions/%s beyond bulkSubscribe:\n%v\nvs\n%v", bulkSubscriptions, name, name, bulk, base)
		}
	}
	var have []string
	for _, f := range files {
		if n := filepath.Base(f); n != "kustomization.yaml" {
			have = append(have, n)
		}
	}
	sort.Strings(listed)
	if !slices.Equal(listed, have) || len(have) != 2 {
		t.Errorf("kustomization lists %v, the directory holds %v", listed, have)
	}
	// Valid against Dapr's Subscription CRD, as TestSchemaGitOpsFiles checks subscriptions/.
	v := helmchart.ObjectValidator(t)
	for _, name := range have {
		raw, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		objs, err := helmchart.DecodeObjects(raw)
		if err != nil || len(objs) != 1 {
			t.Fatalf("%s: %d objects, %v", name, len(objs), err)
		}
		if err := v.Validate(objs[0]); err != nil {
			t.Errorf("%s/%s: %v", bulkSubscriptions, name, err)
		}
	}
}

// componentMetadata reads spec.metadata[name].value of a Component.
func componentMetadata(t *testing.T, o map[string]any, name string) string {
	t.Helper()
	spec, _ := o["spec"].(map[string]any)
	for _, item := range helmchart.AsList(spec["metadata"]) {
		m, _ := item.(map[string]any)
		if m["name"] == name {
			return fmt.Sprint(m["value"])
		}
	}
	return ""
}

// Redis has no native bulk subscribe: daprd's default bulk subscriber fills a batch only
// from the deliveries the component has in flight, `concurrency` of them. Below
// maxMessagesCount every batch waits for maxAwaitDurationMs. The rule, held in components/
// and in the chart's render (which refuses a combination that breaks it).
func TestBulkSubscribeFitsRedisConcurrency(t *testing.T) {
	sub := readYAML(t, filepath.Join(suite.Root, bulkSubscriptions, "task-events.yaml"))
	maxCount, _ := helmchart.Dig(sub, "spec", "bulkSubscribe", "maxMessagesCount").(int)
	conc, err := strconv.Atoi(componentMetadata(t, readYAML(t, filepath.Join(suite.Root, "components", "redis.yaml")), "concurrency"))
	if err != nil {
		t.Fatalf("components/redis.yaml concurrency: %v", err)
	}
	if maxCount > conc {
		t.Errorf("subscriptions/bulk maxMessagesCount %d > components/redis.yaml concurrency %d: every batch waits out maxAwaitDurationMs", maxCount, conc)
	}

	if os.Getenv("HELM") == "" {
		t.Skip("HELM is not set: the chart half of this test needs it")
	}
	objs := helmchart.Render(t, "--set", "pubsub.component.create=true", "--set", "pubsub.subscriptions.create=true",
		"--set", "pubsub.subscriptions.bulkSubscribe.enabled=true")
	var chartConc, chartMax int
	for _, o := range objs {
		switch {
		case o.Kind() == "Component" && helmchart.DigString(o, "spec", "type") == "pubsub.redis":
			chartConc, _ = strconv.Atoi(componentMetadata(t, o, "concurrency"))
		case o.Kind() == "Subscription" && helmchart.DigString(o, "spec", "topic") == suite.Contract.Topic:
			if helmchart.Dig(o, "spec", "bulkSubscribe", "enabled") != true {
				t.Errorf("%s: bulkSubscribe not enabled: %v", o, helmchart.Dig(o, "spec", "bulkSubscribe"))
			}
			chartMax, _ = helmchart.Dig(o, "spec", "bulkSubscribe", "maxMessagesCount").(int)
		}
	}
	if chartMax == 0 || chartConc == 0 {
		t.Fatalf("render lacks the Redis concurrency (%d) or the bulk maxMessagesCount (%d)", chartConc, chartMax)
	}
	if chartMax > chartConc {
		t.Errorf("chart: maxMessagesCount %d > Redis concurrency %d", chartMax, chartConc)
	}
	if chartMax != maxCount || chartConc != conc {
		t.Errorf("chart defaults (maxMessagesCount %d, concurrency %d) differ from subscriptions/bulk and components/redis.yaml (%d, %d)",
			chartMax, chartConc, maxCount, conc)
	}
	// Bulk off by default: the rendered subscription then has no bulkSubscribe.
	for _, o := range helmchart.Render(t, "--set", "pubsub.subscriptions.create=true") {
		if o.Kind() == "Subscription" && helmchart.Dig(o, "spec", "bulkSubscribe") != nil {
			t.Errorf("%s has bulkSubscribe by default", o)
		}
	}
	out, err := helmchart.RunHelm(t, "template", "taskevents", ".", "--set", "pubsub.component.create=true", "--set", "pubsub.subscriptions.create=true",
		"--set", "pubsub.subscriptions.bulkSubscribe.enabled=true", "--set", "pubsub.component.redis.concurrency=10")
	if err == nil || !strings.Contains(out, "pubsub.component.redis.concurrency") {
		t.Errorf("a render with concurrency 10 below maxMessagesCount %d succeeded or did not name the value:\n%.600s", chartMax, out)
	}
}

// bulkLine is what the bulk tests read of a worker's EVENT RECEIVED line.
type bulkLine struct {
	Msg       string `json:"message"`
	EventID   string `json:"event_id"`
	TaskID    string `json:"task_id"`
	Title     string `json:"title"`
	Outcome   string `json:"outcome"`
	Duplicate bool   `json:"duplicate"`
	BatchID   string `json:"batch_id"`
	BatchSize int    `json:"batch_size"`
}

func bulkLines(w *harness.App) []bulkLine {
	var out []bulkLine
	for _, l := range w.Lines() {
		if !strings.Contains(l, `"EVENT RECEIVED"`) {
			continue
		}
		var b bulkLine
		if json.Unmarshal([]byte(l), &b) == nil && b.Msg == "EVENT RECEIVED" {
			out = append(out, b)
		}
	}
	return out
}

// The bulk variant end to end: a backlog published while the worker's sidecar is down is
// delivered in batches (batch_size > 1), every task handled exactly once; the one task the
// worker cannot handle (FAULT_DROP_TITLE) is dropped to the dead-letter route while the
// rest of its batch succeeds; and the backlog drains well inside the time a 1 s batch timer
// stall would take.
func TestBulkSubscribe(t *testing.T) {
	const n = 300
	for _, broker := range suite.Brokers() {
		if broker != "redis" && broker != "kafka" {
			continue
		}
		t.Run(broker, func(t *testing.T) {
			sys := suite.StartSystem(t, broker, harness.SystemOptions{
				Subscriptions: bulkSubscriptions,
				WorkerEnv:     []string{"FAULT_DROP_TITLE=poison-bulk"},
			})
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			w, sidecar := sys.Workers[0], sys.WorkerSidecars[0]
			for !subscribed(ctx, t, sidecar.HTTPURL, suite.Contract.Topic) {
				select {
				case <-ctx.Done():
					t.Fatal("the worker's sidecar never subscribed to task-events")
				case <-time.After(100 * time.Millisecond):
				}
			}

			// With the worker's sidecar down, the backlog waits in the broker.
			if err := sidecar.Stop(20 * time.Second); err != nil {
				t.Fatal(err)
			}
			published := suite.PublishMany(t, sys.Publisher, n/2, 16)
			poison, r, err := suite.CreateTask(ctx, sys.Publisher, "poison-bulk task")
			if err != nil || r.Status != http.StatusAccepted {
				t.Fatalf("publish the poison task: %d %s (%v)", r.Status, r.Body, err)
			}
			for id, title := range suite.PublishMany(t, sys.Publisher, n/2, 16) {
				published[id] = title
			}

			if err := sidecar.Restart(ctx); err != nil {
				t.Fatal(err)
			}
			drain := timeDrain(ctx, t, w, 0, len(published), 30*time.Second, nil)
			tally := suite.WaitHandled(t, sys.Workers, published, 30*time.Second)
			if _, err := w.WaitForLine(ctx, func(l string) bool {
				return strings.Contains(l, `"DEAD LETTER"`) && strings.Contains(l, poison.ID)
			}); err != nil {
				t.Fatalf("the dropped task never reached the dead-letter route: %v", err)
			}

			lines := bulkLines(w)
			maxBatch, batches := 0, map[string]bool{}
			var poisonLine *bulkLine
			for i, l := range lines {
				maxBatch = max(maxBatch, l.BatchSize)
				batches[l.BatchID] = true
				if l.TaskID == poison.ID {
					poisonLine = &lines[i]
				}
			}
			if maxBatch < 2 {
				t.Errorf("no batch held more than one event (max batch_size %d)", maxBatch)
			}
			if poisonLine == nil || poisonLine.Outcome != "DROP" {
				t.Fatalf("the poison task's line: %+v, want outcome DROP", poisonLine)
			}
			siblings := 0
			for _, l := range lines {
				if l.BatchID == poisonLine.BatchID && l.TaskID != poison.ID {
					siblings++
					if l.Outcome != "SUCCESS" {
						t.Errorf("a sibling of the dropped entry was answered %s: %+v", l.Outcome, l)
					}
				}
			}
			if poisonLine.BatchSize < 2 || siblings != poisonLine.BatchSize-1 {
				t.Errorf("the poison task came in a batch of %d with %d other logged entries, want siblings in its batch", poisonLine.BatchSize, siblings)
			}

			// Stalled on the timer (batches of at most Redis's default concurrency, 10, each
			// waiting out daprd's default 1 s), the first and the last handled event would be
			// n/10 - 1 = 29 s apart; even full batches of 100 each waiting 1 s would take 2 s.
			const deadline = 1500 * time.Millisecond
			if drain > deadline {
				t.Errorf("the backlog of %d took %s from the first handled event to the last, past %s: deliveries stall on the batch timer",
					n+1, drain.Round(time.Millisecond), deadline)
			}
			suite.Summarize(t, broker, "bulk-subscribe", published, tally, fmt.Sprintf(" max_batch=%d batches=%d dropped=%d drain_s=%.3f",
				maxBatch, len(batches), tally.Drops, drain.Seconds()))
			if tally.Drops != 1 {
				t.Errorf("dropped %d, want exactly the poison task", tally.Drops)
			}
		})
	}
}

// drainVariant is one configuration TestBulkDrainRate times.
type drainVariant struct {
	broker, mode string
	concurrency  int // Redis component concurrency; 0 keeps components/redis.yaml's
	maxMessages  int // bulk maxMessagesCount; 0 keeps subscriptions/bulk's
}

func (v drainVariant) String() string {
	s := v.broker + ":" + v.mode
	if v.concurrency > 0 {
		s += ":c" + strconv.Itoa(v.concurrency)
	}
	if v.maxMessages > 0 {
		s += ":m" + strconv.Itoa(v.maxMessages)
	}
	return s
}

// parseDrainVariants reads BULK_DRAIN_VARIANTS: broker:mode[:cN][:mN], comma-separated.
func parseDrainVariants(s string) ([]drainVariant, error) {
	var out []drainVariant
	for _, f := range strings.Split(s, ",") {
		parts := strings.Split(strings.TrimSpace(f), ":")
		if len(parts) < 2 || (parts[1] != "single" && parts[1] != "bulk") {
			return nil, fmt.Errorf("BULK_DRAIN_VARIANTS: %q is not broker:single|bulk[:cN][:mN]", f)
		}
		v := drainVariant{broker: parts[0], mode: parts[1]}
		for _, p := range parts[2:] {
			n, err := strconv.Atoi(p[1:])
			switch {
			case err != nil || n < 1:
				return nil, fmt.Errorf("BULK_DRAIN_VARIANTS: %q in %q is not cN or mN", p, f)
			case p[0] == 'c':
				v.concurrency = n
			case p[0] == 'm':
				v.maxMessages = n
			default:
				return nil, fmt.Errorf("BULK_DRAIN_VARIANTS: %q in %q is not cN or mN", p, f)
			}
		}
		out = append(out, v)
	}
	return out, nil
}

// TestBulkDrainRate measures how fast the worker drains a backlog, single against bulk
// delivery, and with the Redis component's concurrency varied. Off unless BULK_DRAIN_EVENTS
// is set (e.g. 20000). For each broker one system runs; each run stops the worker's
// sidecar, preloads the backlog through daprd's bulk publish API, restarts the sidecar with
// the variant's resources and times from the first handled event to the last (the worker's
// SUCCESS counter, polled). Variants are interleaved A B A B for BULK_DRAIN_REPS rounds.
//
//	BULK_DRAIN_EVENTS=20000 BULK_DRAIN_REPS=3 \
//	BULK_DRAIN_VARIANTS=redis:single:c10,redis:single:c100,redis:bulk:c100,kafka:single,kafka:bulk
func TestBulkDrainRate(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("BULK_DRAIN_EVENTS"))
	if n <= 0 {
		t.Skip("BULK_DRAIN_EVENTS is not set: the drain measurement runs on demand")
	}
	reps := 3
	if v := os.Getenv("BULK_DRAIN_REPS"); v != "" {
		reps, _ = strconv.Atoi(v)
	}
	spec := os.Getenv("BULK_DRAIN_VARIANTS")
	if spec == "" {
		spec = "redis:single,redis:bulk"
	}
	variants, err := parseDrainVariants(spec)
	if err != nil {
		t.Fatal(err)
	}
	byBroker := map[string][]drainVariant{}
	var order []string
	for _, v := range variants {
		if _, ok := byBroker[v.broker]; !ok {
			order = append(order, v.broker)
		}
		byBroker[v.broker] = append(byBroker[v.broker], v)
	}
	for _, broker := range order {
		t.Run(broker, func(t *testing.T) {
			sys := suite.StartSystem(t, broker, harness.SystemOptions{WorkerEnv: workerDrainEnv()})
			h := scratchHarness(t)
			results := map[string][]float64{}
			for rep := range reps {
				for _, v := range byBroker[broker] {
					rate, took := drainOnce(t, h, sys, v, n)
					results[v.String()] = append(results[v.String()], rate)
					fmt.Printf("drain %s rep=%d events=%d seconds=%.2f rate=%.0f\n", v, rep+1, n, took.Seconds(), rate)
				}
			}
			for _, v := range byBroker[broker] {
				rs := results[v.String()]
				sort.Float64s(rs)
				fmt.Printf("drain %s: median=%.0f min=%.0f max=%.0f events/s (n=%d, %d runs)\n",
					v, rs[len(rs)/2], rs[0], rs[len(rs)-1], n, len(rs))
			}
		})
	}
}

// workerDrainEnv passes BULK_DRAIN_WORKER_ENV (space-separated KEY=VALUE) to the worker.
func workerDrainEnv() []string {
	return strings.Fields(os.Getenv("BULK_DRAIN_WORKER_ENV"))
}

// scratchHarness writes components directories; the system's processes belong to the
// harness startSystem made.
func scratchHarness(t *testing.T) *harness.Harness {
	t.Helper()
	h, err := harness.New(suite.Root, t.TempDir(), suite.Bins, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// drainOnce runs one timed drain of n events with v's resources.
func drainOnce(t *testing.T, h *harness.Harness, sys *harness.System, v drainVariant, n int) (float64, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	w, sidecar := sys.Workers[0], sys.WorkerSidecars[0]
	if err := sidecar.Stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	var extra map[string]string
	if v.concurrency > 0 && v.broker == "redis" {
		extra = map[string]string{"concurrency": strconv.Itoa(v.concurrency)}
	}
	components, err := h.ComponentsDirWith(sys.Broker, sys.StateRedisAddr, extra)
	if err != nil {
		t.Fatal(err)
	}
	subs := filepath.Join(suite.Root, "subscriptions")
	if v.mode == "bulk" {
		subs = bulkSubscriptionsDir(t, v.maxMessages)
	}
	sidecar.Opts.Resources = []string{components, subs}

	base := workerSuccesses(ctx, t, w)
	if err := preloadBacklog(ctx, sys.PublisherSidecar.HTTPURL, n); err != nil {
		t.Fatal(err)
	}
	if err := sidecar.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	var cpu0 [2]time.Duration
	took := timeDrain(ctx, t, w, base, n, time.Duration(n)*time.Second/20+time.Minute, func() {
		cpu0 = [2]time.Duration{cpuTime(t, w.Pid()), cpuTime(t, sidecar.Pid())}
	})
	app, daprd := cpuTime(t, w.Pid())-cpu0[0], cpuTime(t, sidecar.Pid())-cpu0[1]
	fmt.Printf("drain %s cpu_per_event worker_us=%.0f daprd_us=%.0f\n", v, float64(app.Microseconds())/float64(n), float64(daprd.Microseconds())/float64(n))
	return float64(n) / took.Seconds(), took
}

// cpuTime is the user plus system CPU a process has used (/proc/<pid>/stat, in clock
// ticks of 10 ms).
func cpuTime(t *testing.T, pid int) time.Duration {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The command name may hold spaces; the fields after it are space-separated.
	fields := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	utime, _ := strconv.Atoi(fields[11])
	stime, _ := strconv.Atoi(fields[12])
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// timeDrain polls the worker's SUCCESS counter until it has grown by n from base, and
// returns the time from the first handled event to the last; onFirst, if not nil, runs
// when the first is seen.
func timeDrain(ctx context.Context, t *testing.T, w *harness.App, base, n int, within time.Duration, onFirst func()) time.Duration {
	t.Helper()
	deadline := time.Now().Add(within)
	var first time.Time
	for {
		got := workerSuccesses(ctx, t, w) - base
		now := time.Now()
		if got > 0 && first.IsZero() {
			first = now
			if onFirst != nil {
				onFirst()
			}
		}
		if got >= n {
			return now.Sub(first)
		}
		if now.After(deadline) {
			t.Fatalf("%d of %d handled within %s\n%s", got, n, within, w.Tail(20))
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(100 * time.Millisecond):
			// A scrape costs the worker about a millisecond of CPU (the process collector
			// reads /proc); polling faster would show up in the CPU per event measured.
		}
	}
}

// bulkSubscriptionsDir is subscriptions/bulk, with maxMessagesCount replaced when m > 0.
func bulkSubscriptionsDir(t *testing.T, m int) string {
	t.Helper()
	src := filepath.Join(suite.Root, bulkSubscriptions)
	if m == 0 {
		return src
	}
	dir := t.TempDir()
	for _, name := range []string{"task-events.yaml", "task-events-deadletter.yaml"} {
		raw, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		raw = regexp.MustCompile(`maxMessagesCount: \d+`).ReplaceAll(raw, []byte("maxMessagesCount: "+strconv.Itoa(m)))
		if err := os.WriteFile(filepath.Join(dir, name), raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var successLine = regexp.MustCompile(`(?m)^taskevents_worker_events_total\{outcome="SUCCESS"\} (\S+)$`)

// workerSuccesses reads the worker's SUCCESS counter.
func workerSuccesses(ctx context.Context, t *testing.T, w *harness.App) int {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.OpsURL+"/metrics", nil)
	resp, err := suite.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := successLine.FindSubmatch(body)
	if m == nil {
		t.Fatalf("worker metrics lack the SUCCESS counter")
	}
	f, _ := strconv.ParseFloat(string(m[1]), 64)
	return int(f)
}

// preloadBacklog publishes n task.created events through daprd's bulk publish API, 500
// per request, each entry with its own CloudEvent id, type and partition key, as the
// publisher sets them.
func preloadBacklog(ctx context.Context, daprdURL string, n int) error {
	type entry struct {
		EntryID     string            `json:"entryId"`
		Event       any               `json:"event"`
		ContentType string            `json:"contentType"`
		Metadata    map[string]string `json:"metadata"`
	}
	for left := n; left > 0; left -= 500 {
		entries := make([]entry, min(500, left))
		for i := range entries {
			id := uuid.NewString()
			entries[i] = entry{EntryID: strconv.Itoa(i), ContentType: "application/json",
				Event:    map[string]string{"event_type": "task.created", "task_id": id, "title": "backlog task"},
				Metadata: map[string]string{"cloudevent.id": id, "cloudevent.type": "task.created", "partitionKey": id}}
		}
		body, _ := json.Marshal(entries)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, daprdURL+"/v1.0-alpha1/publish/bulk/pubsub/task-events", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := suite.Client.Do(req)
		if err != nil {
			return err
		}
		msg, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			return fmt.Errorf("bulk publish: %s: %s", resp.Status, msg)
		}
	}
	return nil
}
