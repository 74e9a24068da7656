package main

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/taskevents/taskevents/kit/kittest"
	"github.com/taskevents/taskevents/kit/sidecar/sidecartest"
)

// burst posts n tasks at once while the fake sidecar holds every publish,
// releases it once all n are in the publisher, and returns the statuses.
func burst(t *testing.T, a *app, fake *sidecartest.Fake, n int) []int {
	t.Helper()
	release := fake.Hold()
	defer release()
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp, err := http.Post(a.url+"/tasks", "application/json", strings.NewReader(`{"title":"burst"}`))
			if err != nil {
				t.Error(err)
				return
			}
			_ = resp.Body.Close()
			statuses[i] = resp.StatusCode
		})
	}
	// With coalescing on, PUBLISH_MAX_IN_FLIGHT publishes are in flight and the rest queue; with
	// it off, all n reach the sidecar. Either way, wait for the first.
	kittest.Eventually(t, "the first publish to reach the sidecar", func() bool {
		return len(fake.Publishes())+len(fake.BulkPublishes()) > 0
	})
	release()
	wg.Wait()
	return statuses
}

// batchSizes reads batch_size from every "task event published" line.
func batchSizes(logs string) []int {
	var out []int
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var l struct {
			Message   string `json:"message"`
			BatchSize int    `json:"batch_size"`
		}
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Message == "task event published" {
			out = append(out, l.BatchSize)
		}
	}
	return out
}

func TestRunCoalescing(t *testing.T) {
	for _, tt := range []struct {
		name     string
		env      []string
		wantBulk bool
	}{
		{"on by default", nil, true},
		{"off", []string{"PUBLISH_COALESCE=false"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fake := sidecartest.New(t)
			a := startRun(t, fake, append([]string{"IDEMPOTENCY_STORE=memory"}, tt.env...)...)
			const n = 40
			for i, s := range burst(t, a, fake, n) {
				if s != http.StatusAccepted {
					t.Errorf("request %d: %d, want 202", i, s)
				}
			}
			entries := len(fake.Publishes())
			for _, b := range fake.BulkPublishes() {
				entries += len(b.Entries)
			}
			if entries != n {
				t.Errorf("%d events reached the sidecar, want %d", entries, n)
			}
			maxBatch := 0
			for _, s := range batchSizes(a.stdout.String()) {
				maxBatch = max(maxBatch, s)
			}
			if gotBulk := len(fake.BulkPublishes()) > 0; gotBulk != tt.wantBulk || gotBulk != (maxBatch > 1) {
				t.Errorf("bulk publishes = %d, largest logged batch_size %d; want bulk %v", len(fake.BulkPublishes()), maxBatch, tt.wantBulk)
			}
		})
	}
}

func TestRunPprof(t *testing.T) {
	t.Run("off by default", func(t *testing.T) {
		fake := sidecartest.New(t)
		a := startRun(t, fake)
		if strings.Contains(a.stdout.String(), "pprof") {
			t.Errorf("pprof mentioned without PPROF_ADDR: %s", a.stdout)
		}
		if code, _ := kittest.Get(a.url + "/debug/pprof/"); code != http.StatusNotFound {
			t.Errorf("GET /debug/pprof/ on the API port = %d, want 404", code)
		}
	})
	t.Run("on", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		_ = ln.Close()
		fake := sidecartest.New(t)
		a := startRun(t, fake, "PPROF_ADDR="+addr)
		if code, body := kittest.Get("http://" + addr + "/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "heap") {
			t.Errorf("GET /debug/pprof/ = %d, want 200 with the index", code)
		}
		a.cancel()
		if err := a.wait(t); err != nil {
			t.Fatal(err)
		}
		if code, _ := kittest.Get("http://" + addr + "/debug/pprof/"); code != 0 {
			t.Errorf("pprof still answers %d after run returned", code)
		}
	})
}
