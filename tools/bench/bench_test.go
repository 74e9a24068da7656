package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const wrkOutput = `Running 5s test @ http://127.0.0.1:41233/tasks
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.52ms    1.20ms  30.00ms   90.00%
    Req/Sec     9.12k   500.00    10.00k    70.00%
  Latency Distribution
     50%  812.00us
     75%    3.90ms
     90%    1.02s
     99%    2.00m
  45600 requests in 5.00s, 7.30MB read
  Socket errors: connect 1, read 2, write 3, timeout 4
  Non-2xx or 3xx responses: 12
Requests/sec:   9120.00
Transfer/sec:      1.46MB
`

func TestParseWrk(t *testing.T) {
	r, err := ParseWrk(wrkOutput)
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 45600 || r.Duration != 5*time.Second || r.Non2xx != 12 || r.SocketErrors != 10 {
		t.Fatalf("got %+v", r)
	}
	want := map[string]time.Duration{"50%": 812 * time.Microsecond, "75%": 3900 * time.Microsecond,
		"90%": 1020 * time.Millisecond, "99%": 2 * time.Minute}
	for k, v := range want {
		if got := r.Latency[k]; got != v {
			t.Errorf("latency %s = %s, want %s", k, got, v)
		}
	}
	if got, want := r.OKPerSecond(), float64(45600-12-10)/5; got != want {
		t.Errorf("OKPerSecond = %v, want %v", got, want)
	}
}

func TestParseWrkErrors(t *testing.T) {
	for name, out := range map[string]string{
		"no total":     "Running 1s test @ http://x\n",
		"bad count":    "  12x requests in 1.00s, 1MB read\n",
		"bad duration": "  12 requests in 1.00parsecs, 1MB read\n",
		"bad latency":  "  Latency Distribution\n     50%  fast\n  1 requests in 1.00s, 1MB read\n",
		"bad socket":   "  1 requests in 1.00s, 1MB read\n  Socket errors: connect x, read 0, write 0, timeout 0\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseWrk(out); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func FuzzParseWrk(f *testing.F) {
	f.Add(wrkOutput)
	f.Fuzz(func(t *testing.T, out string) {
		r, err := ParseWrk(out)
		if err == nil && r.Requests < 0 && r.OKPerSecond() > 0 {
			t.Fatalf("negative requests with a positive rate: %+v", r)
		}
	})
}

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		in               []float64
		median, min, max float64
	}{
		{nil, 0, 0, 0},
		{[]float64{5}, 5, 5, 5},
		{[]float64{3, 1, 2}, 2, 1, 3},
		{[]float64{4, 1, 3, 2}, 2.5, 1, 4},
	} {
		s := Summarize(tc.in)
		if s.Median != tc.median || s.Min != tc.min || s.Max != tc.max {
			t.Errorf("Summarize(%v) = %+v, want median %v min %v max %v", tc.in, s, tc.median, tc.min, tc.max)
		}
	}
	in := []float64{3, 1, 2}
	Summarize(in)
	if in[0] != 3 {
		t.Error("Summarize reordered its input")
	}
}

func TestPercentile(t *testing.T) {
	sorted := make([]float64, 100)
	for i := range sorted {
		sorted[i] = float64(i + 1)
	}
	for p, want := range map[float64]float64{50: 50, 99: 99, 100: 100, 1: 1} {
		if got := Percentile(sorted, p); got != want {
			t.Errorf("p%v = %v, want %v", p, got, want)
		}
	}
	if Percentile(nil, 99) != 0 {
		t.Error("empty input")
	}
}

func TestParseStatCPU(t *testing.T) {
	// A command name with spaces and parentheses; utime 250 and stime 50 ticks.
	stat := "4242 (my (odd) app) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 8 0 100 1000000 500 18446744073709551615\n"
	got, err := ParseStatCPU([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	if got != 3*time.Second {
		t.Fatalf("got %s, want 3s", got)
	}
	for name, bad := range map[string]string{
		"no paren":     "4242 app S 1 2 3",
		"short":        "4242 (app) S 1 2 3",
		"not a number": "4242 (app) S 1 4242 4242 0 -1 4194560 1000 0 0 0 x 50 0",
	} {
		if _, err := ParseStatCPU([]byte(bad)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func FuzzParseStatCPU(f *testing.F) {
	f.Add([]byte("1 (a) S 1 1 1 0 -1 0 0 0 0 0 7 3 0 0"))
	f.Fuzz(func(t *testing.T, stat []byte) {
		if d, err := ParseStatCPU(stat); err == nil && d < 0 {
			t.Fatalf("negative CPU %s", d)
		}
	})
}

func TestParseStatusKB(t *testing.T) {
	status := "Name:\tworker\nVmPeak:\t 1266140 kB\nVmHWM:\t   14336 kB\nVmRSS:\t   12288 kB\n"
	for field, want := range map[string]int64{"VmHWM": 14336, "VmRSS": 12288} {
		got, err := ParseStatusKB([]byte(status), field)
		if err != nil || got != want {
			t.Errorf("%s = %d, %v; want %d", field, got, err, want)
		}
	}
	if _, err := ParseStatusKB([]byte(status), "VmSwap"); err == nil {
		t.Error("missing field: no error")
	}
	if _, err := ParseStatusKB([]byte("VmHWM:\tlots kB\n"), "VmHWM"); err == nil {
		t.Error("bad value: no error")
	}
}

func TestResultLine(t *testing.T) {
	for _, tc := range []struct {
		r    Result
		want string
	}{
		{Result{Name: "publisher-vs-direct", Ours: Summarize([]float64{9120.4}), Anchor: Summarize([]float64{12900}),
			Ratio: Summarize([]float64{0.70702})}, "bench publisher-vs-direct: ours=9120 anchor=12900 ratio=0.707"},
		{Result{Name: "publisher-p50-minus-direct", Diff: true, Ours: Summarize([]float64{0.95}), Anchor: Summarize([]float64{0.8}),
			Ratio: Summarize([]float64{0.15})}, "bench publisher-p50-minus-direct: ours=0.950 anchor=0.800 diff=0.150"},
		{Result{Name: "rss-worker", Ours: Summarize([]float64{14.2}), Anchor: Summarize([]float64{25}), Ratio: Summarize([]float64{0.568})},
			"bench rss-worker: ours=14.2 anchor=25.0 ratio=0.568"},
		{Result{Name: "publisher-vs-gosdk", Skipped: "GOSDK_PUBLISHER_BIN not set"}, "bench publisher-vs-gosdk: skipped (GOSDK_PUBLISHER_BIN not set)"},
	} {
		if got := tc.r.Line(); got != tc.want {
			t.Errorf("got  %q\nwant %q", got, tc.want)
		}
	}
}

func TestCompareUsesRoundRatios(t *testing.T) {
	// Round 2 ran on a slower machine state for both: its ratio is 2 like the others, which
	// the ratio of medians (200/150) would not show.
	r := compare("x", "", "", []float64{200, 100, 400}, []float64{100, 50, 200})
	if r.Ratio.Median != 2 || r.Ratio.Min != 2 || r.Ratio.Max != 2 {
		t.Fatalf("ratio %+v", r.Ratio)
	}
	if r.Skipped != "" {
		t.Fatal("skipped")
	}
	if compare("x", "", "", nil, []float64{1}).Skipped == "" {
		t.Fatal("no runs, not skipped")
	}
}

func TestMarkdown(t *testing.T) {
	yes := true
	md := Markdown([]Result{
		{Name: "a", Goal: "≥ 1.3", Unit: "req/s", Ours: Summarize([]float64{3, 1, 2}), Anchor: Summarize([]float64{1, 1, 1}), Ratio: Summarize([]float64{3, 1, 2}), Met: &yes},
		{Name: "b", Goal: "≥ 2", Skipped: "no runs"},
		{Name: "c", Goal: "≤ 0.3 ms", Unit: "ms", Diff: true, Ours: Summarize([]float64{0.5}), Anchor: Summarize([]float64{0.2}), Ratio: Summarize([]float64{0.3})},
	})
	for _, want := range []string{"| a | ≥ 1.3 | 2.00 (1.00–3.00) req/s | 1.00 (1.00–1.00) req/s | 2.00 (1.00–3.00) | yes |", "| b | ≥ 2 | skipped: no runs |",
		"| c | ≤ 0.3 ms | 0.500 ms | 0.200 ms | difference 0.300 ms |"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestParseLoadgen(t *testing.T) {
	recs, err := ParseLoadgen(strings.NewReader("abc 1700000000000000000 202\n- 1700000000001000000 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].ID != "abc" || recs[0].Status != 202 || recs[1].Due.Sub(recs[0].Due) != time.Millisecond {
		t.Fatalf("got %+v", recs)
	}
	for _, bad := range []string{"abc 1\n", "abc x 202\n", "abc 1 x\n"} {
		if _, err := ParseLoadgen(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestEnableBulk(t *testing.T) {
	out, err := enableBulk([]byte("apiVersion: dapr.io/v2alpha1\nkind: Subscription\nspec:\n  topic: task-events\n"), 100, 20)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"bulkSubscribe:", "enabled: true", "maxMessagesCount: 100", "maxAwaitDurationMs: 20", "topic: task-events"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("lacks %q:\n%s", want, out)
		}
	}
	if _, err := enableBulk([]byte("kind: Subscription\n"), 1, 1); err == nil {
		t.Error("no spec: no error")
	}
}

func TestParseCPUModel(t *testing.T) {
	if got := ParseCPUModel([]byte("processor\t: 0\nmodel name\t: AMD EPYC 7B13\n")); got != "AMD EPYC 7B13" {
		t.Fatalf("got %q", got)
	}
}

func TestLoadConfig(t *testing.T) {
	base := []string{"DAPRD=/d", "PUBLISHER_BIN=/p", "WORKER_BIN=/w"}
	cfg, err := LoadConfig(base)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Duration != 5*time.Second || cfg.Reps != 3 || cfg.Connections != 32 || len(cfg.Sweep) != 9 {
		t.Fatalf("defaults: %+v", cfg)
	}
	for _, bad := range []string{"BENCH_DURATION=500ms", "BENCH_REPS=0", "BENCH_SWEEP=1,0", "BENCH_BACKLOG=10", "BENCH_E2E_RATE=0"} {
		_, err := LoadConfig(append(base, bad))
		name := strings.Split(bad, "=")[0]
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %v does not name %s", bad, err, name)
		}
	}
	if _, err := LoadConfig(nil); err == nil || !strings.Contains(err.Error(), "DAPRD") {
		t.Errorf("no binaries: %v", err)
	}
}

func TestIDBefore(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"1796179485121-18", "1796179485323-0", true},
		{"1796179485323-0", "1796179485121-18", false},
		{"5-2", "5-10", true},
		{"5-10", "5-10", false},
		{"999-0", "1000-0", true},
	} {
		if got := idBefore(tc.a, tc.b); got != tc.want {
			t.Errorf("idBefore(%s, %s) = %v", tc.a, tc.b, got)
		}
	}
}

func TestMarkdownNotes(t *testing.T) {
	md := Markdown([]Result{{Name: "e2e-p99", Goal: "≤ 20 ms", Ours: Summarize([]float64{12}), Note: "p50 3 ms"},
		{Name: "x", Skipped: "no runs", Note: "hidden"}})
	if !strings.Contains(md, "\n- `e2e-p99`: p50 3 ms\n") || strings.Contains(md, "hidden") {
		t.Fatalf("notes:\n%s", md)
	}
}

func TestEnableBulkKeepsTheVariant(t *testing.T) {
	variant := "kind: Subscription\nspec:\n  topic: t\n  bulkSubscribe:\n    enabled: true\n    maxMessagesCount: 100\n    maxAwaitDurationMs: 50\n"
	out, err := enableBulk([]byte(variant), 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "maxMessagesCount: 100") || !strings.Contains(string(out), "maxAwaitDurationMs: 10") {
		t.Fatalf("got:\n%s", out)
	}
	if n, err := bulkMaxMessages(out); err != nil || n != 100 {
		t.Fatalf("bulkMaxMessages = %d, %v", n, err)
	}
	if n, _ := bulkMaxMessages([]byte("spec: {}\n")); n != 100 {
		t.Fatalf("daprd's default: got %d", n)
	}
}

func TestPlots(t *testing.T) {
	dir := t.TempDir()
	b := &bench{cfg: Config{Plots: dir},
		sweep: []SweepPoint{{"ours", 1, 900}, {"ours", 2, 1700}, {"direct", 1, 1000}, {"direct", 2, 1500}},
		drains: []DrainRun{{Handler: "worker", Mode: modeSingle, Rate: 3000}, {Handler: "worker", Mode: modeSingle, Rate: 3300},
			{Handler: "worker", Mode: modeBulk, Rate: 7000}, {Handler: "noop", Mode: modeSingle, Rate: 3400}}}
	if err := b.plots(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"throughput-vs-concurrency.png", "drain-single-vs-bulk.png"} {
		raw, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(raw, []byte("\x89PNG")) {
			t.Errorf("%s is not a PNG", name)
		}
	}
}
