package chaos

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/taskevents/taskevents/e2e/internal/suite"
	"github.com/taskevents/taskevents/tools/harness"
)

// settleWithin bounds how long a scenario waits, after its faults, for every accepted task
// to be handled and the broker to be drained. Redis hands an entry a dead consumer held to
// another only after processingTimeout (60 s) plus up to one redeliverInterval (15 s).
func settleWithin() time.Duration {
	if chaosFull() {
		return 5 * time.Minute
	}
	return 90 * time.Second
}

// kill-worker: tasks published at concurrency 24 while the worker process is SIGKILLed at
// random moments (picked on the handled count, between 10% and 90% of the stream) and
// started again each time.
func chaosKillWorker(t *testing.T, broker string) {
	n, kills := sized(800, 10000), sized(2, 5)
	r := startRig(t, broker, harness.SystemOptions{}, rigOptions{})
	rng, seed := newRand()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	s := newStream(r.sys.Publisher)
	done := make(chan struct{})
	go func() { defer close(done); s.closedLoop(ctx, n, 24, nil) }()
	defer func() { cancel(); <-done }()

	w := r.sys.Workers[0]
	var killedAt []int
	start := time.Now()
	for _, m := range killMoments(rng, n, kills, 0.1, 0.9) {
		if err := r.waitProgress(ctx, m); err != nil {
			t.Fatal(err)
		}
		jitter(rng, 200*time.Millisecond)
		killedAt = append(killedAt, r.handledSoFar())
		if _, err := w.Crash(ctx); err != nil {
			t.Fatalf("restart after kill %d: %v", len(killedAt), err)
		}
	}
	<-done
	publishS := time.Since(start).Seconds()
	s.requireAllAccepted(t)
	accepted, _, _, _ := s.snapshot()
	r.judge("kill-worker", accepted, settleWithin(), func() string {
		return fmt.Sprintf(" kills=%d killed_at_handled=%v publish_s=%.1f seed=%d", len(killedAt), killedAt, publishS, seed)
	})
}

// kill-worker-sidecar: the worker's daprd is SIGKILLed mid-stream and started again; the
// worker process keeps running.
func chaosKillWorkerSidecar(t *testing.T, broker string) {
	n := 3000
	r := startRig(t, broker, harness.SystemOptions{}, rigOptions{})
	rng, seed := newRand()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	s := newStream(r.sys.Publisher)
	done := make(chan struct{})
	go func() { defer close(done); s.closedLoop(ctx, n, 24, nil) }()
	defer func() { cancel(); <-done }()

	m := killMoments(rng, n, 1, 0.2, 0.7)[0]
	if err := r.waitProgress(ctx, m); err != nil {
		t.Fatal(err)
	}
	jitter(rng, 200*time.Millisecond)
	killedAt := r.handledSoFar()
	if _, err := r.sys.WorkerSidecars[0].Crash(ctx); err != nil {
		t.Fatalf("restart the worker's sidecar: %v", err)
	}
	<-done
	s.requireAllAccepted(t)
	accepted, _, _, _ := s.snapshot()
	r.judge("kill-worker-sidecar", accepted, settleWithin(), func() string {
		return fmt.Sprintf(" sidecar_kills=1 killed_at_handled=%d seed=%d", killedAt, seed)
	})
}

// replicas-kill: three worker replicas share the stream; one of them, app and sidecar (as
// when its pod dies), is SIGKILLed mid-stream and not replaced.
func chaosReplicasKill(t *testing.T, broker string) {
	n := 3000
	r := startRig(t, broker, harness.SystemOptions{Workers: 3}, rigOptions{})
	rng, seed := newRand()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	s := newStream(r.sys.Publisher)
	done := make(chan struct{})
	go func() { defer close(done); s.closedLoop(ctx, n, 24, nil) }()
	defer func() { cancel(); <-done }()

	m := killMoments(rng, n, 1, 0.2, 0.6)[0]
	if err := r.waitProgress(ctx, m); err != nil {
		t.Fatal(err)
	}
	jitter(rng, 200*time.Millisecond)
	killedAt := r.handledSoFar()
	victim := r.sys.Workers[1]
	r.sys.WorkerSidecars[1].Kill()
	victim.Kill()
	<-done
	s.requireAllAccepted(t)
	accepted, _, _, _ := s.snapshot()
	r.judge("replicas-kill", accepted, settleWithin(), func() string {
		per := make([]int, len(r.sys.Workers))
		for i, w := range r.sys.Workers {
			per[i] = suite.Handled(w.Process)
		}
		return fmt.Sprintf(" replicas=3 killed=%s killed_at_handled=%d per_replica=%v seed=%d", victim.Name, killedAt, per, seed)
	})
}
