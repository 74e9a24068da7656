package chaos

// Chaos: the worker, its sidecar, a replica or the broker is killed, stopped or slowed
// while tasks flow, and every task the publisher accepted must be handled exactly once.
//
// "Handled" is read from the state store: the worker writes the task record
// task-<task id> and its dedupe done mark in one transaction, so a record means the task
// was handled, even when the worker died before it could log the line. "Handled twice" is
// read from the workers' log lines (every process, the killed ones too): more than one
// line with outcome SUCCESS and duplicate=false for one task id.
//
// Each scenario prints one line,
//
//	chaos <scenario> <broker>: accepted=N handled=N lost=N handled_twice=N [key=value…]
//
// and fails on lost>0 or handled_twice>0. Without TASKEVENTS_CHAOS=full a fast subset runs
// (as part of `make test`); `make chaos` runs every scenario at full size.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/taskevents/taskevents/e2e/internal/suite"
	"github.com/taskevents/taskevents/tools/harness"
)

// chaosModeEnv=full runs every scenario at full size (make chaos).
const chaosModeEnv = "TASKEVENTS_CHAOS"

func chaosFull() bool { return os.Getenv(chaosModeEnv) == "full" }

// requireFull skips what only the full run does.
func requireFull(t *testing.T) {
	t.Helper()
	if !chaosFull() {
		t.Skipf("full chaos run only: `make chaos` runs it (%s=full)", chaosModeEnv)
	}
}

// sized picks the fast subset's or the full run's value.
func sized(fast, full int) int {
	if chaosFull() {
		return full
	}
	return fast
}

// chaosBrokers returns the brokers of BROKERS among want, in want's order.
func chaosBrokers(want ...string) []string {
	var out []string
	for _, b := range want {
		if slices.Contains(suite.Brokers(), b) {
			out = append(out, b)
		}
	}
	return out
}

// forBrokers runs fn as a subtest per broker of BROKERS among want; if none is selected,
// it says so instead of passing silently.
func forBrokers(t *testing.T, want []string, fn func(t *testing.T, broker string)) {
	t.Helper()
	selected := chaosBrokers(want...)
	if len(selected) == 0 {
		t.Skipf("runs on %s, none of which is in BROKERS=%s", strings.Join(want, ","), os.Getenv("BROKERS"))
	}
	for _, b := range selected {
		t.Run(b, func(t *testing.T) { fn(t, b) })
	}
}

// TestChaos runs every scenario; without TASKEVENTS_CHAOS=full only the fast subset
// (kill-worker on Redis at 800 tasks and 2 kills, sigterm-worker, idempotency-retry).
func TestChaos(t *testing.T) {
	t.Run("kill-worker", func(t *testing.T) {
		want := []string{"redis"}
		if chaosFull() {
			want = append(want, "kafka")
		}
		forBrokers(t, want, chaosKillWorker)
	})
	t.Run("kill-worker-sidecar", func(t *testing.T) {
		requireFull(t)
		forBrokers(t, []string{"redis", "kafka"}, chaosKillWorkerSidecar)
	})
	t.Run("restart-redis", func(t *testing.T) {
		requireFull(t)
		forBrokers(t, []string{"redis"}, chaosRestartRedis)
	})
	t.Run("slow-handler", func(t *testing.T) {
		requireFull(t)
		forBrokers(t, []string{"redis"}, chaosSlowHandler)
	})
	t.Run("sigterm-worker", func(t *testing.T) { forBrokers(t, []string{"redis"}, chaosSigtermWorker) })
	t.Run("replicas-kill", func(t *testing.T) {
		requireFull(t)
		forBrokers(t, []string{"redis", "kafka"}, chaosReplicasKill)
	})
	t.Run("idempotency-retry", func(t *testing.T) { forBrokers(t, []string{"redis"}, chaosIdempotencyRetry) })
}

// rigOptions choose the broker side of a chaos system.
type rigOptions struct {
	// aof starts the broker Redis with an append-only file fsynced on every write, so it
	// can be restarted without losing what it acknowledged.
	aof bool
	// overrides patch the broker component's metadata (e.g. processingTimeout).
	overrides map[string]string
}

// rig is one system under chaos, with a client on the state store's Redis.
type rig struct {
	t      *testing.T
	broker string
	h      *harness.Harness
	sys    *harness.System
	state  *redis.Client
}

func startRig(t *testing.T, broker string, o harness.SystemOptions, ro rigOptions) *rig {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h := suite.NewHarness(t)
	var b *harness.Broker
	if broker == "redis" {
		var err error
		if b, err = h.StartRedisWith(ctx, 0, harness.RedisOptions{AOF: ro.aof}); err != nil {
			t.Fatal(err)
		}
	} else {
		if ro.aof {
			t.Fatalf("aof is for the Redis broker, not %s", broker)
		}
		b = suite.StartBroker(ctx, t, h, broker)
	}
	for k, v := range ro.overrides {
		b.Overrides[k] = v
	}
	sys, err := h.StartSystem(ctx, b, o)
	if err != nil {
		t.Fatal(err)
	}
	suite.CheckSameBinaries(t, broker, sys)
	state := redis.NewClient(&redis.Options{Addr: sys.StateRedisAddr, MaxRetries: -1})
	t.Cleanup(func() {
		_ = state.Close()
		// Stop everything here, newest first as the harness would, to name a process that
		// does not stop cleanly (the harness reports only the error).
		procs := h.Processes()
		for i := len(procs) - 1; i >= 0; i-- {
			if err := procs[i].Stop(20 * time.Second); err != nil {
				t.Errorf("stopping %s (pid %d): %v\n%s", procs[i].Name, procs[i].Pid(), err, procs[i].Tail(15))
			}
		}
	})
	return &rig{t: t, broker: broker, h: h, sys: sys, state: state}
}

// workerProcesses is every worker process the rig started, dead ones included.
func (r *rig) workerProcesses() []*harness.Process {
	var out []*harness.Process
	for _, p := range r.h.Processes() {
		if p.Name == "worker" || strings.HasPrefix(p.Name, "worker-") {
			out = append(out, p)
		}
	}
	return out
}

// deliveryLog is what the workers' log lines say, over every worker process.
type deliveryLog struct {
	handled     map[string]int // task id → SUCCESS lines with duplicate=false
	successes   int            // SUCCESS lines with duplicate=false
	duplicates  int            // deliveries recognised as redeliveries (duplicate=true)
	retries     int
	drops       int
	deadLetters int
	byTask      map[string][]string // task id → "process: outcome dup reason", for lost ids
}

// logLine is the part of a worker's "EVENT RECEIVED" or "DEAD LETTER" line read here.
type logLine struct {
	Msg       string    `json:"message"`
	Time      time.Time `json:"time"`
	TaskID    string    `json:"task_id"`
	Outcome   string    `json:"outcome"`
	Duplicate bool      `json:"duplicate"`
	Reason    string    `json:"reason"`
}

func (r *rig) deliveries(keepHistory bool) deliveryLog {
	d := deliveryLog{handled: map[string]int{}, byTask: map[string][]string{}}
	for _, p := range r.workerProcesses() {
		for _, l := range p.Lines() {
			if !strings.HasPrefix(l, "{") || (!strings.Contains(l, `"EVENT RECEIVED"`) && !strings.Contains(l, `"DEAD LETTER"`)) {
				continue
			}
			var e logLine
			if json.Unmarshal([]byte(l), &e) != nil {
				continue
			}
			switch e.Msg {
			case "EVENT RECEIVED":
				switch {
				case e.Duplicate:
					d.duplicates++
				case e.Outcome == "SUCCESS":
					d.handled[e.TaskID]++
					d.successes++
				}
				switch e.Outcome {
				case "RETRY":
					d.retries++
				case "DROP":
					d.drops++
				}
			case "DEAD LETTER":
				d.deadLetters++
				e.Outcome = "DEAD LETTER"
			default:
				continue
			}
			if keepHistory {
				d.byTask[e.TaskID] = append(d.byTask[e.TaskID], fmt.Sprintf("%s %s pid %d: %s duplicate=%t %s",
					e.Time.Format("15:04:05"), p.Name, p.Pid(), e.Outcome, e.Duplicate, e.Reason))
			}
		}
	}
	return d
}

// dedupeMark reads the worker's claim or done mark of task id's event, as evidence for a
// lost task: the worker's ledger key is dedupe-<first 16 bytes of sha256(event key)>.
func (r *rig) dedupeMark(ctx context.Context, id string) string {
	sum := sha256.Sum256([]byte("pubsub/task-events/" + id))
	key := stateKey("dedupe-" + hex.EncodeToString(sum[:16]))
	v, err := r.state.HGet(ctx, key, "data").Result()
	if errors.Is(err, redis.Nil) {
		return "no dedupe mark"
	}
	if err != nil {
		return "dedupe mark: " + err.Error()
	}
	ttl, _ := r.state.TTL(ctx, key).Result()
	return fmt.Sprintf("dedupe mark %s (ttl %s)", v, ttl)
}

// handledSoFar counts SUCCESS lines (not duplicates) over every worker process: the
// progress the kill moments are picked on.
func (r *rig) handledSoFar() int {
	n := 0
	for _, p := range r.workerProcesses() {
		for _, l := range p.Lines() {
			if strings.Contains(l, `"outcome":"SUCCESS","duplicate":false`) {
				n++
			}
		}
	}
	return n
}

// waitProgress waits until the workers handled at least n tasks.
func (r *rig) waitProgress(ctx context.Context, n int) error {
	for {
		got := r.handledSoFar()
		if got >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d tasks handled, %d so far: %w", n, got, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// taskRecord is the worker's handled-task record in the state store.
type taskRecord struct {
	TaskID    string    `json:"task_id"`
	Title     string    `json:"title"`
	EventID   string    `json:"event_id"`
	EventType string    `json:"event_type"`
	HandledAt time.Time `json:"handled_at"`
}

// stateKey is where Dapr's Redis state store keeps the worker's key: a hash named
// <app-id>||<key> whose field data holds the value.
func stateKey(key string) string { return "task-worker||" + key }

// records reads the task records of ids from the state store; missing ones are absent.
func (r *rig) records(ctx context.Context, ids []string) (map[string]taskRecord, error) {
	out := map[string]taskRecord{}
	for start := 0; start < len(ids); start += 1000 {
		batch := ids[start:min(start+1000, len(ids))]
		pipe := r.state.Pipeline()
		cmds := make([]*redis.StringCmd, len(batch))
		for i, id := range batch {
			cmds[i] = pipe.HGet(ctx, stateKey("task-"+id), "data")
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return out, err
		}
		for i, cmd := range cmds {
			raw, err := cmd.Result()
			if errors.Is(err, redis.Nil) {
				continue
			}
			if err != nil {
				return out, err
			}
			var rec taskRecord
			if err := json.Unmarshal([]byte(raw), &rec); err != nil {
				return out, fmt.Errorf("task record of %s is not JSON: %q: %w", batch[i], raw, err)
			}
			out[batch[i]] = rec
		}
	}
	return out, nil
}

// countRecords counts every task record in the state store.
func (r *rig) countRecords(ctx context.Context) (int, error) {
	n := 0
	iter := r.state.Scan(ctx, 0, stateKey("task-*"), 1000).Iterator()
	for iter.Next(ctx) {
		n++
	}
	return n, iter.Err()
}

// waitRecords waits until every id has a task record, or the context ends; it returns
// the records found.
func (r *rig) waitRecords(ctx context.Context, ids []string) map[string]taskRecord {
	found := map[string]taskRecord{}
	missing := ids
	for {
		got, err := r.records(ctx, missing)
		for id, rec := range got {
			found[id] = rec
		}
		var still []string
		for _, id := range missing {
			if _, ok := found[id]; !ok {
				still = append(still, id)
			}
		}
		missing = still
		if len(missing) == 0 {
			return found
		}
		// Nothing more will come when the broker is drained and every missing task went
		// to the dead-letter topic instead: stop waiting for it.
		if r.allDeadLettered(missing) {
			if left, berr := r.backlog(ctx); berr == nil && left == "" {
				r.t.Logf("%d of %d tasks have no record: every one was dead-lettered and the broker is drained", len(missing), len(ids))
				return found
			}
		}
		select {
		case <-ctx.Done():
			r.t.Logf("after the deadline %d of %d tasks have no record (last read error: %v)", len(missing), len(ids), err)
			return found
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// allDeadLettered reports whether a worker logged a DEAD LETTER line for every id.
func (r *rig) allDeadLettered(ids []string) bool {
	dead := map[string]bool{}
	for _, p := range r.workerProcesses() {
		for _, e := range harness.Events(p.Lines(), "DEAD LETTER") {
			dead[e.TaskID] = true
		}
	}
	for _, id := range ids {
		if !dead[id] {
			return false
		}
	}
	return true
}

// backlog says what the broker still holds for the worker's group: "" when drained.
func (r *rig) backlog(ctx context.Context) (string, error) {
	switch r.broker {
	case "redis":
		groups, err := r.state.XInfoGroups(ctx, suite.Contract.Topic).Result()
		if err != nil {
			return "", err
		}
		for _, g := range groups {
			if g.Name != suite.Contract.WorkerAppID {
				continue
			}
			lag := g.Lag
			if lag < 0 { // Redis cannot tell (entries deleted): compare the last ids
				info, err := r.state.XInfoStream(ctx, suite.Contract.Topic).Result()
				if err != nil {
					return "", err
				}
				if lag = 0; info.LastGeneratedID != g.LastDeliveredID {
					lag = 1
				}
			}
			if g.Pending == 0 && lag == 0 {
				return "", nil
			}
			return fmt.Sprintf("stream task-events: %d pending (delivered, not acked), lag %d", g.Pending, lag), nil
		}
		return "stream task-events has no group task-worker", nil
	case "kafka":
		addr := r.sys.Broker.Overrides["brokers"]
		end, err := harness.KafkaEndOffsets(ctx, addr, suite.Contract.Topic)
		if err != nil {
			return "", err
		}
		committed, err := harness.KafkaCommitted(ctx, addr, suite.Contract.WorkerAppID, suite.Contract.Topic)
		if err != nil {
			return "", err
		}
		if committed >= end {
			return "", nil
		}
		return fmt.Sprintf("topic task-events: %d messages, group task-worker committed %d", end, committed), nil
	default:
		return "", fmt.Errorf("no backlog check for broker %s", r.broker)
	}
}

// waitDrained waits until the broker holds nothing more for the worker.
func (r *rig) waitDrained(ctx context.Context) error {
	for {
		left, err := r.backlog(ctx)
		if err == nil && left == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				left = err.Error()
			}
			return fmt.Errorf("the broker's backlog never drained (deadline): %s", left)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// verdict is a scenario's outcome.
type verdict struct {
	accepted, handled, lost, twice int
	log                            deliveryLog
}

// judge waits (within) until every accepted task has a record and the broker is drained,
// then prints the scenario's line with extra appended and fails on lost or twice-handled
// tasks, naming the first few with what the workers logged about them.
func (r *rig) judge(scenario string, accepted map[string]string, within time.Duration, extra func() string) verdict {
	t := r.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	ids := make([]string, 0, len(accepted))
	for id := range accepted {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	start := time.Now()
	recs := r.waitRecords(ctx, ids)
	// The backlog gets its own few seconds even when the records took all the time.
	dctx, dcancel := context.WithTimeout(context.Background(), max(time.Until(start.Add(within)), 10*time.Second))
	defer dcancel()
	drainErr := r.waitDrained(dctx)
	settled := time.Since(start)

	v := verdict{accepted: len(accepted), log: r.deliveries(true)}
	var lostIDs, twiceIDs []string
	for _, id := range ids {
		rec, ok := recs[id]
		if !ok {
			lostIDs = append(lostIDs, id)
			continue
		}
		v.handled++
		if rec.TaskID != id || rec.EventID != id || rec.Title != accepted[id] || rec.EventType != "task.created" {
			t.Errorf("task %s (%q) has the record %+v: not the task that was published", id, accepted[id], rec)
		}
	}
	v.lost = len(lostIDs)
	for id, n := range v.log.handled {
		if n > 1 {
			v.twice += n - 1
			twiceIDs = append(twiceIDs, id)
		}
	}
	sort.Strings(twiceIDs)
	more := ""
	if extra != nil {
		more = extra()
	}
	line := fmt.Sprintf("chaos %s %s: accepted=%d handled=%d lost=%d handled_twice=%d%s duplicates=%d dead_lettered=%d settle_s=%.1f",
		scenario, r.broker, v.accepted, v.handled, v.lost, v.twice, more, v.log.duplicates, v.log.deadLetters, settled.Seconds())
	fmt.Println(line)
	for _, id := range lostIDs[:min(5, len(lostIDs))] {
		t.Errorf("lost task %s (%q): %s; the workers logged:\n  %s", id, accepted[id],
			r.dedupeMark(context.Background(), id), strings.Join(v.log.byTask[id], "\n  "))
	}
	for _, id := range twiceIDs[:min(5, len(twiceIDs))] {
		t.Errorf("task %s handled %d times; the workers logged:\n  %s", id, v.log.handled[id], strings.Join(v.log.byTask[id], "\n  "))
	}
	if v.lost > 0 || v.twice > 0 {
		t.Errorf("%s", line)
	}
	if drainErr != nil {
		t.Errorf("%v", drainErr)
	}
	return v
}

// stream sends POST /tasks: closed-loop (each client sends its next task when the last
// is answered) or paced (open loop).
type stream struct {
	app    *harness.App
	client *http.Client
	// header, when not nil, adds headers to request i.
	header func(i int) map[string]string

	next     atomic.Int64 // index of the next task
	answered atomic.Int64
	// latencies, when not nil, collects each answer's latency and when it was sent.
	latencies *latencies

	mu        sync.Mutex
	accepted  map[string]string // task id → title
	statuses  map[int]int       // every answer other than 202, by status
	failures  int               // transport errors and malformed 202s
	firstFail []string
}

func newStream(app *harness.App) *stream {
	return &stream{app: app, client: suite.Client, accepted: map[string]string{}, statuses: map[int]int{}}
}

// send publishes task i.
func (s *stream) send(ctx context.Context, i int) {
	title := fmt.Sprintf("chaos task %d", i)
	body, _ := json.Marshal(map[string]string{"title": title})
	var header map[string]string
	if s.header != nil {
		header = s.header(i)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.app.URL+"/tasks", strings.NewReader(string(body)))
	if err != nil {
		panic(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	var (
		status int
		c      suite.Created
		raw    []byte
	)
	sentAt := time.Now()
	resp, err := s.client.Do(req)
	if err == nil {
		status = resp.StatusCode
		raw, err = readAll(resp)
		if err == nil && status == http.StatusAccepted {
			err = json.Unmarshal(raw, &c)
			if err == nil && (c.ID == "" || c.Title != title) {
				err = fmt.Errorf("202 body %s does not carry the task %q", raw, title)
			}
		}
	}
	s.answered.Add(1)
	if s.latencies != nil {
		s.latencies.add(sentAt, time.Since(sentAt))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err != nil:
		if ctx.Err() != nil {
			return // the stream was stopped
		}
		s.failures++
		if len(s.firstFail) < 5 {
			s.firstFail = append(s.firstFail, err.Error())
		}
	case status == http.StatusAccepted:
		s.accepted[c.ID] = title
	default:
		s.statuses[status]++
		if len(s.firstFail) < 5 && status != http.StatusServiceUnavailable {
			s.firstFail = append(s.firstFail, fmt.Sprintf("%d %s", status, raw))
		}
	}
}

// closedLoop runs conc clients until n tasks were sent (n < 0: until stop is closed).
func (s *stream) closedLoop(ctx context.Context, n, conc int, stop <-chan struct{}) {
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := int(s.next.Add(1) - 1)
				if (n >= 0 && i >= n) || ctx.Err() != nil {
					return
				}
				s.send(ctx, i)
			}
		})
	}
	wg.Wait()
}

// snapshot copies the results so far.
func (s *stream) snapshot() (accepted map[string]string, statuses map[int]int, failures int, first []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	accepted = make(map[string]string, len(s.accepted))
	for k, v := range s.accepted {
		accepted[k] = v
	}
	statuses = map[int]int{}
	for k, v := range s.statuses {
		statuses[k] = v
	}
	return accepted, statuses, s.failures, append([]string(nil), s.firstFail...)
}

// acceptedCount is how many tasks were answered 202 so far.
func (s *stream) acceptedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.accepted)
}

// rejected counts the answers other than 202 and the transport failures.
func (s *stream) rejected() int {
	_, statuses, failures, _ := s.snapshot()
	n := failures
	for _, c := range statuses {
		n += c
	}
	return n
}

// requireAllAccepted fails the test unless every request was answered 202: for the
// scenarios whose faults are on the worker side, where the publisher has no reason to
// refuse anything.
func (s *stream) requireAllAccepted(t *testing.T) {
	t.Helper()
	_, statuses, failures, first := s.snapshot()
	if failures > 0 || len(statuses) > 0 {
		t.Errorf("the publisher refused tasks while only the worker side was disturbed: %d transport failures, answers %v; first: %v",
			failures, statuses, first)
	}
}

// killMoments picks k handled-task counts in [lo·n, hi·n), sorted and apart, at which to
// inject a fault: random moments in the middle of the stream.
func killMoments(rng *rand.Rand, n, k int, lo, hi float64) []int {
	span := (hi - lo) / float64(k)
	out := make([]int, k)
	for i := range k {
		// One moment in each of k equal slices, so that a restart can finish in between.
		out[i] = int(float64(n) * (lo + span*(float64(i)+rng.Float64()*0.8)))
	}
	return out
}

// newRand returns a seeded generator and its seed, printed so a run can be replayed.
func newRand() (*rand.Rand, uint64) {
	seed := rand.Uint64()
	if v := os.Getenv("TASKEVENTS_CHAOS_SEED"); v != "" {
		_, _ = fmt.Sscan(v, &seed)
	}
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), seed
}

// jitter sleeps a random 0..max: the fault lands at a random moment, not on a poll tick.
func jitter(rng *rand.Rand, maxDelay time.Duration) {
	time.Sleep(time.Duration(rng.Int64N(int64(maxDelay))))
}

func readAll(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// latencies records request latencies, to tell a stall (one slow moment) from a rate the
// system cannot keep up with.
type latencies struct {
	start time.Time
	mu    sync.Mutex
	all   []time.Duration
	worst time.Duration
	at    time.Duration // when the worst one was sent, from start
}

func (l *latencies) add(sent time.Time, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all = append(l.all, d)
	if d > l.worst {
		l.worst, l.at = d, sent.Sub(l.start)
	}
}

// summary is "latency_p50_ms=… p99_ms=… max_ms=… max_at_s=…".
func (l *latencies) summary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.all) == 0 {
		return "latency: none"
	}
	sorted := slices.Clone(l.all)
	slices.Sort(sorted)
	q := func(p float64) float64 {
		return float64(sorted[int(p*float64(len(sorted)-1))].Microseconds()) / 1000
	}
	return fmt.Sprintf("latency_p50_ms=%.1f latency_p99_ms=%.1f latency_max_ms=%.0f latency_max_at_s=%.0f",
		q(0.50), q(0.99), float64(l.worst.Milliseconds()), l.at.Seconds())
}
