package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

const (
	topic = "task-events"
	// group is the Redis consumer group every worker sidecar reads with: the component sets
	// no consumerID, so it is the app id, task-worker, whichever handler is behind it.
	group = "task-worker"
)

// DrainRun is one timed drain of a backlog.
type DrainRun struct {
	Handler string  `json:"handler"`
	Mode    string  `json:"mode"`
	Rep     int     `json:"rep"`
	Events  int     `json:"events"`
	Seconds float64 `json:"seconds"`
	Rate    float64 `json:"rate"`
	// CPU per event of the handler and of its daprd over the drain, µs.
	AppCPUus   float64 `json:"app_cpu_us"`
	DaprdCPUus float64 `json:"daprd_cpu_us"`
}

// handler is a worker or an anchor that daprd delivers to.
type handler struct {
	name string
	app  *app
	// daprHTTPPort is fixed for the workers, which call their sidecar (the ledger).
	daprHTTPPort int
	programmatic bool // a programmatic subscription: the python mode's resources
}

// resetStream empties the stream and points the group at its end with no pending entries,
// so the next drain reads exactly the backlog preloaded after it.
func resetStream(ctx context.Context, rdb *redis.Client) error {
	if err := rdb.XTrimMaxLen(ctx, topic, 0).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("XTRIM: %w", err)
	}
	if err := rdb.XGroupCreateMkStream(ctx, topic, group, "$").Err(); err != nil && !strings.Contains(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("XGROUP CREATE: %w", err)
	}
	if err := rdb.XGroupSetID(ctx, topic, group, "$").Err(); err != nil {
		return fmt.Errorf("XGROUP SETID: %w", err)
	}
	consumers, err := rdb.XInfoConsumers(ctx, topic, group).Result()
	if err != nil {
		return fmt.Errorf("XINFO CONSUMERS: %w", err)
	}
	for _, c := range consumers {
		if err := rdb.XGroupDelConsumer(ctx, topic, group, c.Name).Err(); err != nil {
			return fmt.Errorf("XGROUP DELCONSUMER: %w", err)
		}
	}
	return nil
}

// preload publishes n task.created events through daprd's bulk publish API, each entry
// with its own CloudEvent id, type and partition key as the publisher sets them.
func preload(ctx context.Context, daprdURL string, n int) error {
	const batch, parallel = 500, 4
	type entry struct {
		EntryID     string            `json:"entryId"`
		Event       any               `json:"event"`
		ContentType string            `json:"contentType"`
		Metadata    map[string]string `json:"metadata"`
	}
	client := &http.Client{Timeout: 60 * time.Second}
	url := daprdURL + "/v1.0-alpha1/publish/bulk/pubsub/" + topic
	jobs := make(chan int)
	errs := make(chan error, parallel)
	var wg sync.WaitGroup
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for size := range jobs {
				entries := make([]entry, size)
				for i := range entries {
					id := uuid.NewString()
					entries[i] = entry{EntryID: fmt.Sprint(i), ContentType: "application/json",
						Event:    map[string]string{"event_type": "task.created", "task_id": id, "title": "backlog task"},
						Metadata: map[string]string{"cloudevent.id": id, "cloudevent.type": "task.created", "partitionKey": id}}
				}
				body, _ := json.Marshal(entries)
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					errs <- fmt.Errorf("bulk publish: %w", err)
					return
				}
				msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusNoContent {
					errs <- fmt.Errorf("bulk publish: %s: %s", resp.Status, msg)
					return
				}
			}
		}()
	}
	var err error
feed:
	for left := n; left > 0; left -= batch {
		select {
		case jobs <- min(batch, left):
		case err = <-errs:
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if err != nil {
		return err
	}
	select {
	case err = <-errs:
		return err
	default:
		return nil
	}
}

// drain preloads n events with no sidecar delivering, starts h's sidecar in mode and times
// the drain: from the first entry the group reads (so daprd's start-up is not counted) to
// the group having read the last entry with nothing pending.
func (b *bench) drain(ctx context.Context, h handler, mode string, n int) (DrainRun, error) {
	run := DrainRun{Handler: h.name, Mode: mode, Events: n}
	if err := quiesce(ctx, b.rdb); err != nil {
		return run, err
	}
	if err := resetStream(ctx, b.rdb); err != nil {
		return run, err
	}
	before, err := b.rdb.XInfoStream(ctx, topic).Result()
	if err != nil {
		return run, fmt.Errorf("XINFO STREAM: %w", err)
	}
	if err := preload(ctx, b.pubDaprdURL, n); err != nil {
		return run, err
	}
	info, err := b.rdb.XInfoStream(ctx, topic).Result()
	if err != nil {
		return run, fmt.Errorf("XINFO STREAM: %w", err)
	}
	// A publish still in flight when the last load run ended (the publisher finishes a
	// publish its client hung up on) can land after the reset: count what is there.
	if info.Length < int64(n) || info.Length > int64(n)+1000 {
		return run, fmt.Errorf("preloaded %d events but the stream holds %d", n, info.Length)
	}
	n = int(info.Length)
	run.Events = n
	last := info.LastGeneratedID
	if h.programmatic {
		mode = modePython
	}
	sc, err := b.rig.startSidecar(ctx, "daprd-"+h.name, "task-worker", h.daprHTTPPort, h.app.port, mode)
	if err != nil {
		return run, err
	}
	defer func() { _ = sc.stop(15 * time.Second) }()
	// At least 50 events/s, or something is broken.
	deadline := time.Now().Add(time.Duration(n)*time.Second/50 + 90*time.Second)
	var t0 time.Time
	var cpu *cpuMeter
	for {
		g, err := groupInfo(ctx, b.rdb)
		if err != nil {
			return run, err
		}
		now := time.Now()
		if t0.IsZero() && (g.LastDeliveredID != before.LastGeneratedID || g.Pending > 0) {
			t0 = now
			if cpu, err = newCPUMeter(map[string]int{"app": h.app.pid(), "daprd": sc.pid()}); err != nil {
				return run, err
			}
		}
		if !idBefore(g.LastDeliveredID, last) && g.Pending == 0 {
			run.Seconds = now.Sub(t0).Seconds()
			run.Rate = float64(n) / run.Seconds
			used, err := cpu.used()
			if err != nil {
				return run, err
			}
			run.AppCPUus = float64(used["app"].Microseconds()) / float64(n)
			run.DaprdCPUus = float64(used["daprd"].Microseconds()) / float64(n)
			return run, nil
		}
		if err := errors.Join(sc.alive(), h.app.alive()); err != nil {
			return run, err
		}
		if now.After(deadline) {
			return run, fmt.Errorf("%s (%s) did not drain %d events in time: group at %s of %s, %d pending\n%s",
				h.name, mode, n, g.LastDeliveredID, last, g.Pending, h.app.Tail())
		}
		select {
		case <-ctx.Done():
			return run, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func groupInfo(ctx context.Context, rdb *redis.Client) (redis.XInfoGroup, error) {
	groups, err := rdb.XInfoGroups(ctx, topic).Result()
	if err != nil {
		return redis.XInfoGroup{}, fmt.Errorf("XINFO GROUPS: %w", err)
	}
	for _, g := range groups {
		if g.Name == group {
			return g, nil
		}
	}
	return redis.XInfoGroup{}, fmt.Errorf("no consumer group %s on %s", group, topic)
}

// quiesce waits until nothing has been added to the stream for 500 ms: publishes of the
// load run before (the slow Python publisher's, the publisher's own for clients that hung
// up) must not land in the backlog being timed.
func quiesce(ctx context.Context, rdb *redis.Client) error {
	last, since := "", time.Now()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		info, err := rdb.XInfoStream(ctx, topic).Result()
		if err != nil && !strings.Contains(err.Error(), "no such key") {
			return fmt.Errorf("XINFO STREAM: %w", err)
		}
		if info.LastGeneratedID != last {
			last, since = info.LastGeneratedID, time.Now()
		} else if time.Since(since) >= 500*time.Millisecond {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("the stream still grows 30s after the load stopped")
}

// idBefore reports whether stream entry id a ("<ms>-<seq>") comes before b.
func idBefore(a, b string) bool {
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	if len(am) != len(bm) {
		return len(am) < len(bm)
	}
	if am != bm {
		return am < bm
	}
	if len(as) != len(bs) {
		return len(as) < len(bs)
	}
	return as < bs
}
