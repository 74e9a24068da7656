package chaos

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/taskevents/taskevents/tools/harness"
)

// restart-redis: the broker Redis (also the state store here), with its append-only file
// fsynced on every write, is stopped gracefully mid-stream, kept down for longer than the
// publisher's PUBLISH_TIMEOUT, and started again on the same port and data directory.
// Every publish answered 202 is handled; the publishes during the outage are answered
// 503 (the task was not published, retry), never 500.
func chaosRestartRedis(t *testing.T, broker string) {
	const (
		publishTimeout = 2 * time.Second
		down           = 5 * time.Second // > 2 × publishTimeout: some publishes see nothing but the outage
	)
	r := startRig(t, broker, harness.SystemOptions{
		PublisherEnv: []string{"PUBLISH_TIMEOUT=" + publishTimeout.String()}}, rigOptions{aof: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	s := newStream(r.sys.Publisher)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); s.closedLoop(ctx, -1, 16, stop) }()
	defer func() { cancel(); <-done }()

	if err := r.waitProgress(ctx, 500); err != nil {
		t.Fatal(err)
	}
	b := r.sys.Broker
	stoppedAt := time.Now()
	if err := b.Stop(20 * time.Second); err != nil {
		t.Fatalf("stop redis: %v", err)
	}
	time.Sleep(down) // the length of the outage is the fault being injected
	if err := b.Relaunch(ctx); err != nil {
		t.Fatalf("start redis again: %v", err)
	}
	downFor := time.Since(stoppedAt)
	// Go on until publishing has clearly recovered.
	base := s.acceptedCount()
	for s.acceptedCount() < base+500 {
		if ctx.Err() != nil {
			t.Fatalf("publishing never recovered after the restart: %d accepted since", s.acceptedCount()-base)
		}
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	<-done

	accepted, statuses, failures, first := s.snapshot()
	unavailable, other5xx, other := statuses[http.StatusServiceUnavailable], 0, 0
	for code, n := range statuses {
		switch {
		case code == http.StatusServiceUnavailable:
		case code >= 500:
			other5xx += n
		default:
			other += n
		}
	}
	if other5xx > 0 || other > 0 || failures > 0 {
		t.Errorf("during the Redis restart the publisher answered %v and %d requests failed in transport; "+
			"want only 202 and 503; first: %v", statuses, failures, first)
	}
	if unavailable == 0 {
		t.Errorf("no publish was answered 503 during a %s outage (PUBLISH_TIMEOUT %s): the outage was not seen", down, publishTimeout)
	}
	r.judge("restart-redis", accepted, settleWithin(), func() string {
		return fmt.Sprintf(" unavailable_503=%d other_5xx=%d transport_errors=%d down_ms=%d",
			unavailable, other5xx, failures, downFor.Milliseconds())
	})
}

// slow-handler: every delivery takes 2.5 s (FAULT_DELAY, under HANDLER_TIMEOUT 4 s), longer
// than the Redis component's processingTimeout of 1.5 s, so Redis hands each entry out
// again while its first delivery is still being handled. The worker recognises the
// redelivery (RETRY while the first is in flight, SUCCESS duplicate=true once it is done)
// and handles each task once.
func chaosSlowHandler(t *testing.T, broker string) {
	n := 30
	r := startRig(t, broker, harness.SystemOptions{WorkerEnv: []string{"FAULT_DELAY=2500ms"}},
		rigOptions{overrides: map[string]string{"processingTimeout": "1500", "redeliverInterval": "500"}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s := newStream(r.sys.Publisher)
	s.closedLoop(ctx, n, 8, nil)
	s.requireAllAccepted(t)
	accepted, _, _, _ := s.snapshot()
	v := r.judge("slow-handler", accepted, settleWithin(), func() string {
		return " fault_delay_ms=2500 processing_timeout_ms=1500 redeliver_interval_ms=500"
	})
	if v.log.duplicates == 0 {
		t.Errorf("no delivery was recognised as a duplicate: Redis never redelivered an entry past processingTimeout, so nothing was tested")
	}
}

// sigterm-worker: SIGTERM reaches the worker (DRAIN_DELAY 1 s) while deliveries are in
// flight (each takes 300 ms). Readiness on the ops port turns 503 before the process exits;
// the deliveries in flight finish or come again to the restarted worker; none is lost.
func chaosSigtermWorker(t *testing.T, broker string) {
	n := sized(300, 2000)
	r := startRig(t, broker, harness.SystemOptions{WorkerEnv: []string{"DRAIN_DELAY=1s", "FAULT_DELAY=300ms"}}, rigOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	s := newStream(r.sys.Publisher)
	done := make(chan struct{})
	go func() { defer close(done); s.closedLoop(ctx, n, 16, nil) }()
	defer func() { cancel(); <-done }()

	w := r.sys.Workers[0]
	if err := r.waitProgress(ctx, n/5); err != nil {
		t.Fatal(err)
	}
	old := w.Process

	// Poll /readyz on the ops port until the process is gone.
	type readiness struct {
		first503 time.Time // the first 503 (necessarily before exit: after it nothing answers)
		polls    int
	}
	sawReady := make(chan struct{}) // closed at the first 200
	probed := make(chan readiness, 1)
	go func() {
		var rd readiness
		pc := &http.Client{Timeout: time.Second}
		for {
			select {
			case <-old.Done():
				probed <- rd
				return
			default:
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.OpsURL+"/readyz", nil)
			if resp, err := pc.Do(req); err == nil {
				_ = resp.Body.Close()
				rd.polls++
				switch {
				case resp.StatusCode == http.StatusOK && rd.polls == 1:
					close(sawReady)
				case resp.StatusCode == http.StatusServiceUnavailable && rd.first503.IsZero():
					rd.first503 = time.Now()
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	select {
	case <-sawReady:
	case <-time.After(10 * time.Second):
		t.Fatalf("the worker's %s/readyz did not answer 200 before the SIGTERM", w.OpsURL)
	}
	sigAt := time.Now()
	old.Terminate()
	select {
	case <-old.Done():
	case <-time.After(30 * time.Second):
		t.Fatalf("the worker did not exit within 30 s of SIGTERM:\n%s", old.Tail(20))
	}
	exitAt := time.Now()
	rd := <-probed
	if _, err := old.Exited(); err != nil {
		t.Errorf("the worker exited with %v after SIGTERM, want a clean exit:\n%s", err, old.Tail(20))
	}
	if rd.first503.IsZero() {
		t.Errorf("readiness never answered 503 between SIGTERM and exit (%d polls over %s)", rd.polls, exitAt.Sub(sigAt))
	}
	lines := old.Lines()
	draining := -1
	stopped := false
	for i, l := range lines {
		if draining < 0 && strings.Contains(l, `"message":"draining"`) {
			draining = i
		}
		stopped = stopped || strings.Contains(l, `"message":"stopped"`)
	}
	finishedAfter := 0
	if draining >= 0 {
		finishedAfter = len(harness.Events(lines[draining:], "EVENT RECEIVED"))
	}
	if draining < 0 || !stopped {
		t.Errorf("the worker did not log draining and stopped after SIGTERM:\n%s", old.Tail(20))
	}
	if finishedAfter == 0 {
		t.Errorf("no delivery finished after the SIGTERM: nothing was in flight, so nothing was tested")
	}
	if err := w.Relaunch(ctx); err != nil {
		t.Fatal(err)
	}
	<-done
	s.requireAllAccepted(t)
	accepted, _, _, _ := s.snapshot()
	r.judge("sigterm-worker", accepted, settleWithin(), func() string {
		return fmt.Sprintf(" sigterm_to_503_ms=%d ready_503_before_exit_ms=%d sigterm_to_exit_ms=%d finished_after_sigterm=%d",
			rd.first503.Sub(sigAt).Milliseconds(), exitAt.Sub(rd.first503).Milliseconds(), exitAt.Sub(sigAt).Milliseconds(), finishedAfter)
	})
}
