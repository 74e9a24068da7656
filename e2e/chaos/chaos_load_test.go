package chaos

import (
	"context"
	"fmt"
	"maps"
	"math"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskevents/taskevents/e2e/internal/suite"
	"github.com/taskevents/taskevents/tools/harness"
)

// TestChaosLoad measures the maximum publish rate (32 closed-loop clients for 10 s) and how
// fast the worker works off that burst (the maximum handling rate), then offers 80% of the
// lower of the two for 5 minutes as paced open-loop load (each request leaves on its
// schedule, whether earlier ones were answered or not) over loopback. The worker handles
// far fewer tasks a second than the publisher accepts (three state store round trips per
// delivery against one publish), so 80% of the publish rate alone would only measure how
// fast a backlog grows: with Redis that ends past the stream's maxLenApprox, where Redis
// trims entries nobody has read. It wants no error,
// the resident memory of both apps flat within ±10% after a warm-up minute, and the
// broker's backlog drained at the end with every task handled once.
// TASKEVENTS_LOAD_DURATION shortens the paced phase (the warm-up is then a fifth of it).
func TestChaosLoad(t *testing.T) {
	requireFull(t)
	if !slices.Contains(suite.Brokers(), "redis") {
		t.Skip("the load test runs on redis, which is not in BROKERS")
	}
	duration := 5 * time.Minute
	if v := os.Getenv("TASKEVENTS_LOAD_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("TASKEVENTS_LOAD_DURATION: %v", err)
		}
		duration = d
	}
	warmup := min(time.Minute, duration/5)
	r := startRig(t, "redis", harness.SystemOptions{}, rigOptions{})
	pub, wrk := r.sys.Publisher, r.sys.Workers[0]
	lc := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1024}}

	// 1. The maximum publish rate, and the rate at which the worker works the burst off.
	probe := newStream(pub)
	probe.client = lc
	stop := make(chan struct{})
	probeStart := time.Now()
	timer := time.AfterFunc(10*time.Second, func() { close(stop) })
	defer timer.Stop()
	probe.closedLoop(context.Background(), -1, 32, stop)
	maxPublish := float64(probe.acceptedCount()) / time.Since(probeStart).Seconds()
	if n := probe.rejected(); n > 0 {
		_, statuses, failures, first := probe.snapshot()
		t.Fatalf("measuring the maximum rate: %d errors (%v, %d transport), first: %v", n, statuses, failures, first)
	}
	probeAccepted, _, _, _ := probe.snapshot()
	// The paced phase starts on an empty backlog.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	if got := r.waitRecords(ctx, slices.Collect(maps.Keys(probeAccepted))); len(got) < len(probeAccepted) {
		cancel()
		t.Fatalf("the worker handled %d of the %d tasks of the 10 s burst within 5 minutes", len(got), len(probeAccepted))
	}
	maxHandle := float64(len(probeAccepted)) / time.Since(probeStart).Seconds()
	err := r.waitDrained(ctx)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	rate := 0.8 * min(maxPublish, maxHandle)

	// 2. Paced load, RSS sampled every 5 s.
	type sample struct {
		at       time.Duration
		pub, wrk int64
	}
	var (
		samples []sample
		mu      sync.Mutex
	)
	sampleStop := make(chan struct{})
	sampled := make(chan struct{})
	loadStart := time.Now()
	go func() {
		defer close(sampled)
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-sampleStop:
				return
			case <-tick.C:
			}
			p, perr := pub.RSS()
			w, werr := wrk.RSS()
			if perr != nil || werr != nil {
				t.Errorf("RSS: %v %v", perr, werr)
				continue
			}
			mu.Lock()
			samples = append(samples, sample{time.Since(loadStart), p, w})
			mu.Unlock()
		}
	}()
	s := newStream(pub)
	s.client = lc
	s.latencies = &latencies{start: time.Now()}
	sent, overruns := s.paced(context.Background(), rate, duration, 1024)
	close(sampleStop)
	<-sampled
	loadTook := time.Since(loadStart)
	_, statuses, failures, first := s.snapshot()
	errorsN := s.rejected() + overruns
	if errorsN > 0 {
		t.Errorf("%d errors under load: answers %v, %d transport failures, %d requests that could not leave on time "+
			"(%d already in flight); first: %v", errorsN, statuses, failures, overruns, 1024, first)
	}

	// 3. Drained, every task handled once.
	accepted, _, _, _ := s.snapshot()
	all := make(map[string]string, len(accepted)+len(probeAccepted))
	for _, m := range []map[string]string{probeAccepted, accepted} {
		for k, v := range m {
			all[k] = v
		}
	}
	r.judge("load", all, 5*time.Minute, func() string {
		return fmt.Sprintf(" max_publish_rate=%.0f/s max_handle_rate=%.0f/s rate=%.0f/s sent=%d", maxPublish, maxHandle, rate, sent)
	})

	// RSS flat after the warm-up: every later sample within ±10% of the one at its end.
	var base *sample
	pubDev, wrkDev := 0.0, 0.0
	for i := range samples {
		sm := &samples[i]
		if sm.at < warmup {
			continue
		}
		if base == nil {
			base = sm
			continue
		}
		pubDev = math.Max(pubDev, math.Abs(float64(sm.pub-base.pub))/float64(base.pub))
		wrkDev = math.Max(wrkDev, math.Abs(float64(sm.wrk-base.wrk))/float64(base.wrk))
	}
	if base == nil || len(samples) == 0 {
		t.Fatalf("no RSS sample after the %s warm-up (%d samples)", warmup, len(samples))
	}
	last := samples[len(samples)-1]
	mb := func(b int64) float64 { return float64(b) / (1 << 20) }
	fmt.Printf("load: rate=%.0f/s duration=%.0fs errors=%d rss_publisher=%.1f->%.1fMB rss_worker=%.1f->%.1fMB"+
		" max_publish_rate=%.0f/s max_handle_rate=%.0f/s sent=%d warmup=%.0fs rss_publisher_max_dev=%.1f%% rss_worker_max_dev=%.1f%% %s\n",
		rate, loadTook.Seconds(), errorsN, mb(base.pub), mb(last.pub), mb(base.wrk), mb(last.wrk),
		maxPublish, maxHandle, sent, warmup.Seconds(), 100*pubDev, 100*wrkDev, s.latencies.summary())
	if pubDev > 0.10 || wrkDev > 0.10 {
		var list []string
		for _, sm := range samples {
			list = append(list, fmt.Sprintf("%.0fs:%.1f/%.1f", sm.at.Seconds(), mb(sm.pub), mb(sm.wrk)))
		}
		t.Errorf("RSS not flat after the warm-up: publisher within %.1f%%, worker within %.1f%% of the sample at %.0fs; "+
			"want ±10%%; samples (publisher/worker MB): %s", 100*pubDev, 100*wrkDev, base.at.Seconds(), strings.Join(list, " "))
	}
}

// paced sends requests at rate per second for d, each on its own schedule (open loop): a
// request whose time has come leaves whether or not earlier ones were answered. At most
// maxInFlight are outstanding; one that cannot leave then is counted as an overrun.
func (s *stream) paced(ctx context.Context, rate float64, d time.Duration, maxInFlight int) (sent, overruns int) {
	sem := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; ctx.Err() == nil; i++ {
		at := time.Duration(float64(i) * float64(time.Second) / rate)
		if at >= d {
			break
		}
		if wait := time.Until(start.Add(at)); wait > 0 {
			time.Sleep(wait)
		}
		select {
		case sem <- struct{}{}:
			sent++
			wg.Go(func() {
				defer func() { <-sem }()
				s.send(ctx, i)
			})
		default:
			overruns++
		}
	}
	wg.Wait()
	return sent, overruns
}
