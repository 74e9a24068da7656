package bench

import (
	"fmt"
	"slices"
)

// series returns one figure of the publisher runs of variant at conns, round by round.
func (b *bench) series(variant string, conns int, figure func(pubRun) float64) []float64 {
	var out []float64
	for _, r := range b.pubRuns {
		if r.Variant == variant && r.Connections == conns {
			out = append(out, figure(r))
		}
	}
	return out
}

func (b *bench) drainSeries(handler, mode string) []float64 {
	var out []float64
	for _, d := range b.drains {
		if d.Handler == handler && d.Mode == mode {
			out = append(out, d.Rate)
		}
	}
	return out
}

func rps(r pubRun) float64 { return r.RPS }

// atLeast and atMost build a Met for a goal on the median.
func atLeast(v, goal float64) *bool { ok := v >= goal; return &ok }
func atMost(v, goal float64) *bool  { ok := v <= goal; return &ok }

// compare is a ratio measure: ours and anchor round by round.
func compare(name, unit, goal string, ours, anchor []float64) Result {
	r := Result{Name: name, Unit: unit, Goal: goal, Ours: Summarize(ours), Anchor: Summarize(anchor), Ratio: Summarize(ratios(ours, anchor))}
	if len(ours) == 0 || len(anchor) == 0 {
		r.Skipped = "no runs"
	}
	return r
}

// bound is a measure against a fixed goal (a latency or a memory bound): the anchor is
// the goal itself.
func bound(name, unit, goal string, limit float64, ours []float64) Result {
	r := Result{Name: name, Unit: unit, Goal: goal, Ours: Summarize(ours), Anchor: Summarize([]float64{limit})}
	var rs []float64
	for _, v := range ours {
		rs = append(rs, v/limit)
	}
	r.Ratio = Summarize(rs)
	r.Met = atMost(r.Ours.Median, limit)
	return r
}

// results turns the runs into the measures of issue 10's goals table, in its order.
func (b *bench) results(rss map[string]map[string]float64) []Result {
	c := b.cfg.Connections
	var out []Result
	add := func(r Result, met func(float64) *bool, missing string) {
		if missing != "" && r.Skipped != "" {
			r.Skipped = missing
		}
		if r.Skipped == "" && met != nil {
			r.Met = met(r.Ratio.Median)
		}
		out = append(out, r)
	}
	ours := b.series("ours", c, rps)
	add(compare("publisher-vs-direct", "req/s", "≥ 1.3", ours, b.series("direct", c, rps)),
		func(v float64) *bool { return atLeast(v, 1.3) }, "")
	add(compare("publisher-vs-gosdk", "req/s", "≥ 1.5", ours, b.series("gosdk", c, rps)),
		func(v float64) *bool { return atLeast(v, 1.5) }, "GOSDK_PUBLISHER_BIN not set")
	add(compare("publisher-vs-python", "req/s", "≥ 50", ours, b.series("python", c, rps)),
		func(v float64) *bool { return atLeast(v, 50) }, "PYTHON_UVICORN not set")

	traced := compare("tracing-overhead", "req/s", "reported", b.series("ours-traced", c, rps), ours)
	if traced.Skipped == "" {
		app := func(r pubRun) float64 { return r.AppCPUus }
		traced.Note = fmt.Sprintf("the publisher exporting its spans (POST /tasks, publish task-events) over OTLP/HTTP to a sink "+
			"that answers 200, against tracing off; publisher CPU %s against %s µs/event; %d exports, %s MB",
			num(Summarize(b.series("ours-traced", c, app)).Median), num(Summarize(b.series("ours", c, app)).Median),
			b.otlp.requests.Load(), num(float64(b.otlp.bytes.Load())/1e6))
		if b.otlp.requests.Load() == 0 {
			traced.Note += "; no span reached the sink, so tracing was not on"
		}
	}
	add(traced, nil, "")

	p50 := func(r pubRun) float64 { return r.P50ms }
	lat := compare("publisher-p50-minus-direct", "ms", "≤ 0.3 ms", b.series("ours", 1, p50), b.series("direct", 1, p50))
	lat.Diff, lat.Ratio = true, Summarize(diffs(lat.Ours.Values, lat.Anchor.Values))
	add(lat, func(v float64) *bool { return atMost(v, 0.3) }, "")

	app := func(r pubRun) float64 { return r.AppCPUus }
	daprd := func(r pubRun) float64 { return r.DaprdCPUus }
	cpu := compare("publisher-cpu-vs-daprd-single", "µs/event", "≤ 0.35", b.series("ours-single", c, app), b.series("ours-single", c, daprd))
	add(cpu, func(v float64) *bool { return atMost(v, 0.35) }, "")
	add(compare("publisher-cpu-vs-daprd-coalesced", "µs/event", "reported", b.series("ours", c, app), b.series("ours", c, daprd)), nil, "")

	noop := "NOOP_WORKER_BIN not set"
	add(compare("worker-vs-noop-single", "events/s", "≥ 0.95", b.drainSeries("worker", modeSingle), b.drainSeries("noop", modeSingle)),
		func(v float64) *bool { return atLeast(v, 0.95) }, noop)
	add(compare("worker-vs-noop-bulk", "events/s", "≥ 0.95", b.drainSeries("worker", modeBulk), b.drainSeries("noop", modeBulk)),
		func(v float64) *bool { return atLeast(v, 0.95) }, noop)
	add(compare("worker-ledger-vs-noop-single", "events/s", "reported", b.drainSeries("worker-ledger", modeSingle), b.drainSeries("noop", modeSingle)),
		nil, noop)
	add(compare("worker-bulk-vs-single", "events/s", "≥ 2", b.drainSeries("worker", modeBulk), b.drainSeries("worker", modeSingle)),
		func(v float64) *bool { return atLeast(v, 2) }, "")

	for _, w := range []struct{ name, worker, store string }{
		{"e2e-p99", "worker-ledger", "durable ledger"}, {"e2e-p99-memory", "worker", "in-memory dedupe"}} {
		res := b.e2e[w.worker]
		e := bound(w.name, "ms", "≤ 20 ms", 20, []float64{res.P99})
		e.Note = fmt.Sprintf("worker with the %s; p50 %s ms, max %s ms; %d of %d handled", w.store, num(res.P50), num(res.Max), res.Handled, res.Sent)
		if res.Handled < res.Sent {
			f := false
			e.Met = &f
		}
		out = append(out, e)
	}
	for _, a := range []struct{ name, app, what string }{
		{"rss-publisher", "publisher", "the publisher (coalescing)"}, {"rss-worker", "worker-ledger", "the worker (durable ledger)"}} {
		r := bound(a.name, "MB", "≤ 25 MB", 25, []float64{rss["load"][a.app]})
		r.Note = fmt.Sprintf("VmHWM of %s after wrk at 1 to %d connections and the drains; %s MB after the open-loop run",
			a.what, slices.Max(append([]int{b.cfg.Connections}, b.cfg.Sweep...)), num(rss["open-loop"][a.app]))
		out = append(out, r)
	}
	full := bound("rss-worker-dedupe-full", "MB", "≤ 40 MB", 40, []float64{b.dedupeRSS})
	full.Note = "VmRSS with " + itoa(b.logs["worker"].handled()) + " ids handled (DEDUPE_STORE=memory); peak " + num(b.dedupeHWM) + " MB"
	out = append(out, full)
	add(compare("worker-vs-python", "events/s", "reported", b.drainSeries("worker", modeSingle), b.drainSeries("python", modeSingle)),
		nil, "PYTHON_UVICORN not set")
	return out
}

func itoa(n int) string { return num(float64(n)) }
