package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/taskevents/taskevents/tools/bench"
)

// The load generator role, against a fake publisher: every request is recorded with its
// 202's id.
func TestRunLoadgen(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/tasks" || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, `{"id":"task-%d","title":"t","event":"published"}`, n.Add(1))
	}))
	defer srv.Close()
	out := filepath.Join(t.TempDir(), "sent.txt")
	var stdout bytes.Buffer
	err := run(context.Background(), []string{"BENCH_ROLE=loadgen", "LOADGEN_URL=" + srv.URL + "/tasks", "LOADGEN_RATE=200",
		"LOADGEN_DURATION=1s", "LOADGEN_OUT=" + out}, &stdout)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := bench.ParseLoadgen(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 200 {
		t.Fatalf("%d records, want 200", len(recs))
	}
	for i, r := range recs {
		if r.Status != http.StatusAccepted || !strings.HasPrefix(r.ID, "task-") {
			t.Fatalf("record %d: %+v", i, r)
		}
		if i > 0 && !r.Due.After(recs[i-1].Due) {
			t.Fatalf("record %d is not due after the one before", i)
		}
	}
	if !strings.Contains(stdout.String(), "200 answered 202") {
		t.Fatalf("stdout: %q", stdout.String())
	}
}

func TestRunBadConfig(t *testing.T) {
	err := run(context.Background(), []string{"DAPRD=/d", "PUBLISHER_BIN=/p", "WORKER_BIN=/w", "BENCH_REPS=0"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "BENCH_REPS") {
		t.Fatalf("error %v does not name BENCH_REPS", err)
	}
	err = run(context.Background(), []string{"BENCH_ROLE=loadgen"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "LOADGEN_URL") {
		t.Fatalf("error %v does not name LOADGEN_URL", err)
	}
}
