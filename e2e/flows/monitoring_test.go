package flows

import (
	"context"
	"encoding/json"
	"fmt"
	"image/color"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gopkg.in/yaml.v3"

	"github.com/taskevents/taskevents/e2e/internal/helmchart"
	"github.com/taskevents/taskevents/e2e/internal/suite"
	"github.com/taskevents/taskevents/tools/harness"
)

// The chart's alerting rules with their windows shortened by values, not copied: what
// Prometheus evaluates here is exactly what the PrometheusRule ships.
const (
	monitorWindow = 10 * time.Second
	monitorFor    = 3 * time.Second
	// monitorRateInterval stands in for Grafana's $__rate_interval in the panel queries.
	monitorRateInterval = "10s"
)

var monitoringAlerts = []string{"deadLetters", "retryRatio", "sidecarUnavailable", "workerNotReceiving"}

// TestMonitoring runs the chart's Grafana dashboard and PrometheusRule against a real
// Prometheus that scrapes both apps and both daprd sidecars (Redis): every panel query
// returns data under traffic, no alert fires without a fault, and each alert fires under
// the fault it is for.
func TestMonitoring(t *testing.T) {
	// Most of its minute is waiting out rule windows, as TestRetryIsRedelivered's is waiting
	// out daprd's back-off: the two run side by side, after the other tests.
	t.Parallel()
	helmchart.Helm(t)
	if suite.Bins.Prometheus == "" {
		t.Fatal("PROMETHEUS is not set: run `make test-e2e`, which builds Prometheus and promtool (tools/prometheus/build.sh) and sets it")
	}
	began := time.Now()
	dashboard, rules := renderMonitoring(t)
	rulesFile := filepath.Join(t.TempDir(), "taskevents-rules.yaml")
	if err := os.WriteFile(rulesFile, rules, 0o600); err != nil {
		t.Fatal(err)
	}
	checkRulesWithPromtool(t, rulesFile)

	// A short PUBLISH_TIMEOUT: with its sidecar stopped, the publisher answers 503 within 1 s.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	h := suite.NewHarness(t)
	sys, err := h.StartSystem(ctx, suite.StartBroker(ctx, t, h, "redis"),
		harness.SystemOptions{PublisherEnv: []string{"PUBLISH_TIMEOUT=1s"}})
	if err != nil {
		t.Fatal(err)
	}
	w := sys.Workers[0]
	hostPort := func(u string) string { return strings.TrimPrefix(u, "http://") }
	daprdMetrics := func(s *harness.Sidecar) string { return fmt.Sprintf("127.0.0.1:%d", s.Opts.MetricsPort) }
	// No namespace label, as on a laptop: the dashboard's variables default to All (.*) and
	// the rules aggregate by namespace, so both must work without it.
	prom, err := h.StartPrometheus(ctx, harness.PrometheusOptions{
		Jobs: []harness.ScrapeJob{
			{Name: "publisher", Targets: []string{hostPort(sys.Publisher.OpsURL)}},
			{Name: "worker", Targets: []string{hostPort(w.OpsURL)}},
			{Name: "daprd-publisher", Targets: []string{daprdMetrics(sys.PublisherSidecar)}},
			{Name: "daprd-worker", Targets: []string{daprdMetrics(sys.WorkerSidecars[0])}},
		},
		RuleFiles: []string{rulesFile},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := prom.WaitTargetsUp(ctx); err != nil {
		t.Fatalf("scrape targets: %v", err)
	}
	rs, err := prom.Rules(ctx)
	if err != nil || len(rs) != len(monitoringAlerts) {
		t.Fatalf("Prometheus loaded %d rules (%v), want the chart's %d", len(rs), err, len(monitoringAlerts))
	}

	traffic := startTraffic(sys.Publisher)
	defer traffic.stop()
	trafficFrom := time.Now()

	checkPanels(ctx, t, prom, dashboard)

	// Without a fault: once every window has filled with traffic, nothing is pending or
	// firing, over a few evaluations.
	waitUntil(ctx, trafficFrom.Add(monitorWindow+monitorFor+2*time.Second))
	for range 3 {
		alerts, err := prom.Alerts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(alerts) > 0 {
			t.Fatalf("alerts active without a fault: %v", alertSummary(alerts))
		}
		time.Sleep(time.Second)
	}
	checkRulesHealthy(ctx, t, prom)

	var fired []string
	var marks []faultMark
	mark := func(label string) { marks = append(marks, faultMark{at: time.Now(), label: label}) }
	expect := func(alert, fault string) {
		t.Helper()
		since := time.Now()
		if err := waitAlertFiring(ctx, prom, alert); err != nil {
			t.Fatalf("%s under %s: %v\ntraffic: %s", alert, fault, err, traffic.summary())
		}
		fired = append(fired, fmt.Sprintf("%s=fired under %s (%.1fs)", alert, fault, time.Since(since).Seconds()))
		t.Logf("%s firing %.1fs after %s", alert, time.Since(since).Seconds(), fault)
	}

	// RETRY: every event is answered RETRY twice before it succeeds (2 of 3 deliveries).
	w.Setenv("FAULT_RETRY_FIRST", "2")
	if err := w.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	mark("FAULT_RETRY_FIRST=2")
	expect("TaskEventsRetryRatioHigh", "FAULT_RETRY_FIRST=2")

	// Dead letters: a task the worker answers DROP goes to the dead-letter topic, which the
	// worker also subscribes to.
	w.Setenv("FAULT_RETRY_FIRST", "0")
	w.Setenv("FAULT_DROP_TITLE", "poison")
	if err := w.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	mark("FAULT_DROP_TITLE")
	if _, r, err := suite.CreateTask(ctx, sys.Publisher, "poison pill"); err != nil || r.Status != http.StatusAccepted {
		t.Fatalf("POST /tasks poison pill = %d %s (%v)", r.Status, r.Body, err)
	}
	expect("TaskEventsDeadLetters", "FAULT_DROP_TITLE")

	// The worker dies while the publisher keeps publishing. Its series go stale; once its
	// last samples leave the window, the right side of the rule's `unless` has no series
	// at all, and the rule must still fire.
	if err := w.Stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	mark("worker stopped")
	expect("TaskEventsWorkerNotReceiving", "worker stopped")
	// It fired through the missing series, not through a worker that counts zero.
	if got, err := prom.Query(ctx, fmt.Sprintf(`increase(taskevents_worker_events_total[%s])`, monitorWindow)); err != nil || len(got) != 0 {
		t.Errorf("the stopped worker still has series in the rule's window (%v): %v", err, got)
	}
	w.Setenv("FAULT_DROP_TITLE", "")
	if err := w.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	mark("worker back")

	// 503s: the publisher's daprd stops; POST /tasks is answered 503.
	if err := sys.PublisherSidecar.Stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	mark("daprd-publisher stopped")
	expect("TaskEventsPublisherSidecarUnavailable", "daprd-publisher stopped")
	if err := sys.PublisherSidecar.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := harness.WaitHTTP(ctx, sys.Publisher.URL+"/readyz", http.StatusOK); err != nil {
		t.Fatalf("the publisher is not ready again after its sidecar restarted: %v", err)
	}
	mark("daprd-publisher back")

	checkRulesHealthy(ctx, t, prom)
	out := os.Getenv("DASHBOARD_PNG_OUT")
	if out != "" {
		// The picture also shows the recovery: one more window of traffic without a fault.
		waitUntil(ctx, time.Now().Add(monitorWindow+2*time.Second))
	}
	traffic.stop()

	if out != "" {
		if err := plotDashboard(ctx, prom, dashboard, trafficFrom.Add(-5*time.Second), time.Now(), marks, out); err != nil {
			t.Errorf("DASHBOARD_PNG_OUT: %v", err)
		} else {
			var at []string
			for _, m := range marks {
				at = append(at, fmt.Sprintf("%s at %.0fs", m.label, m.at.Sub(trafficFrom.Add(-5*time.Second)).Seconds()))
			}
			t.Logf("dashboard rendered to %s; dashed lines: %s", out, strings.Join(at, ", "))
		}
	}
	fmt.Printf("alerts: %s; quiet_without_fault=yes\n", strings.Join(fired, "; "))
	fmt.Printf("monitoring: %s, traffic %s\n", time.Since(began).Round(100*time.Millisecond), traffic.summary())
}

// grafanaDashboard is the part of the dashboard JSON the test reads.
type grafanaDashboard struct {
	Templating struct {
		List []struct {
			Name     string `json:"name"`
			Type     string `json:"type"`
			AllValue string `json:"allValue"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		Title   string `json:"title"`
		Targets []struct {
			RefID        string `json:"refId"`
			Expr         string `json:"expr"`
			LegendFormat string `json:"legendFormat"`
		} `json:"targets"`
	} `json:"panels"`
}

// renderMonitoring renders the chart with the dashboard and the rules on and the windows
// short, and returns the dashboard from its ConfigMap and the PrometheusRule's groups as a
// Prometheus rule file.
func renderMonitoring(t *testing.T) (grafanaDashboard, []byte) {
	t.Helper()
	args := []string{"--set", "monitoring.dashboard.enabled=true", "--set", "monitoring.prometheusRule.enabled=true"}
	for _, a := range monitoringAlerts {
		args = append(args, "--set", fmt.Sprintf("monitoring.prometheusRule.%s.window=%s", a, monitorWindow),
			"--set", fmt.Sprintf("monitoring.prometheusRule.%s.for=%s", a, monitorFor))
	}
	var dashboard grafanaDashboard
	var rules []byte
	for _, o := range helmchart.Render(t, args...) {
		switch o.Kind() {
		case "ConfigMap":
			if helmchart.DigString(o, "metadata", "labels", "grafana_dashboard") != "1" {
				continue
			}
			raw := helmchart.DigString(o, "data", "taskevents.json")
			if err := json.Unmarshal([]byte(raw), &dashboard); err != nil {
				t.Fatalf("%s: data taskevents.json: %v", o, err)
			}
		case "PrometheusRule":
			var err error
			if rules, err = yaml.Marshal(map[string]any{"groups": helmchart.Dig(o, "spec", "groups")}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(dashboard.Panels) == 0 || rules == nil {
		t.Fatalf("the chart rendered no dashboard ConfigMap labelled grafana_dashboard: \"1\" (%d panels) or no PrometheusRule", len(dashboard.Panels))
	}
	return dashboard, rules
}

// checkRulesWithPromtool runs `promtool check rules` on the rule file, and on a copy with one
// expression broken, which must fail: a check that cannot fail proves nothing.
func checkRulesWithPromtool(t *testing.T, file string) {
	t.Helper()
	promtool := filepath.Join(suite.Bins.Prometheus, "promtool")
	out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	t.Logf("promtool check rules: %s", strings.TrimSpace(string(out)))
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(data), "taskevents_worker_dead_letters_total[", "taskevents_worker_dead_letters_total[[", 1)
	if broken == string(data) {
		t.Fatal("the rule file has no dead-letter expression to break")
	}
	bad := filepath.Join(t.TempDir(), "broken-rules.yaml")
	if err := os.WriteFile(bad, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", bad).CombinedOutput(); err == nil ||
		!strings.Contains(string(out), "parse error") {
		t.Fatalf("promtool check rules passed a rule file with a broken expression (%v):\n%s", err, out)
	}
}

var grafanaVariable = regexp.MustCompile(`\$\{?[A-Za-z_][A-Za-z0-9_]*\}?`)

// panelQuery substitutes the dashboard's variables as Grafana does with every variable at
// All: the variable's allValue, and monitorRateInterval for $__rate_interval.
func panelQuery(d grafanaDashboard, expr string) (string, error) {
	all := map[string]string{"__rate_interval": monitorRateInterval}
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			all[v.Name] = v.AllValue
		}
	}
	var unknown []string
	out := grafanaVariable.ReplaceAllStringFunc(expr, func(m string) string {
		name := strings.Trim(m, "${}")
		v, ok := all[name]
		if !ok {
			unknown = append(unknown, m)
		}
		return v
	})
	if len(unknown) > 0 {
		return "", fmt.Errorf("unknown variables %v", unknown)
	}
	return out, nil
}

// mayBeNaN are the targets that have no observation in this test, so the quantile or the
// mean divides by zero: the worker's bulk deliveries need a subscription with bulkSubscribe.
var mayBeNaN = map[string]string{"worker: mean per bulk delivery": "the default subscription is not bulk"}

// checkPanels waits until every target of every panel returns data, with at least one finite
// value, and prints one line per panel.
func checkPanels(ctx context.Context, t *testing.T, prom *harness.Prometheus, d grafanaDashboard) {
	t.Helper()
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		var parts []string
		for _, tg := range p.Targets {
			expr, err := panelQuery(d, tg.Expr)
			if err != nil {
				t.Fatalf("panel %q %s: %v", p.Title, tg.RefID, err)
			}
			var got []harness.Sample
			err = harness.Poll(ctx, 30*time.Second, 500*time.Millisecond, func(ctx context.Context) error {
				if got, err = prom.Query(ctx, expr); err != nil {
					return harness.Stop(err)
				}
				if len(got) == 0 {
					return fmt.Errorf("no series")
				}
				if _, ok := mayBeNaN[tg.LegendFormat]; !ok && !slices.ContainsFunc(got, func(s harness.Sample) bool { return !math.IsNaN(s.Value) }) {
					return fmt.Errorf("only NaN: %v", got)
				}
				return nil
			})
			if err != nil {
				t.Errorf("panel %q target %s (%s) returns no data: %v\n%s", p.Title, tg.RefID, tg.LegendFormat, err, expr)
				continue
			}
			parts = append(parts, fmt.Sprintf("%s=%s", tg.RefID, samplesBrief(got, tg.LegendFormat)))
		}
		fmt.Printf("panel %q: %s\n", p.Title, strings.Join(parts, " "))
	}
}

func samplesBrief(ss []harness.Sample, legend string) string {
	var vals []string
	for _, s := range ss {
		vals = append(vals, fmt.Sprintf("%.3g", s.Value))
	}
	b := fmt.Sprintf("%d series [%s]", len(ss), strings.Join(vals, ","))
	if why, ok := mayBeNaN[legend]; ok && !slices.ContainsFunc(ss, func(s harness.Sample) bool { return !math.IsNaN(s.Value) }) {
		b += " (NaN: " + why + ")"
	}
	return b
}

func checkRulesHealthy(ctx context.Context, t *testing.T, prom *harness.Prometheus) {
	t.Helper()
	rs, err := prom.Rules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Health != "ok" {
			t.Errorf("rule %s: health %q %s", r.Name, r.Health, r.LastError)
		}
	}
}

func waitAlertFiring(ctx context.Context, prom *harness.Prometheus, name string) error {
	return harness.Poll(ctx, 60*time.Second, 500*time.Millisecond, func(ctx context.Context) error {
		alerts, err := prom.Alerts(ctx)
		if err != nil {
			return err
		}
		for _, a := range alerts {
			if a.Name() == name && a.State == "firing" {
				return nil
			}
		}
		return fmt.Errorf("active: %v", alertSummary(alerts))
	})
}

func alertSummary(alerts []harness.Alert) []string {
	var out []string
	for _, a := range alerts {
		out = append(out, fmt.Sprintf("%s %s value=%s", a.Name(), a.State, a.Value))
	}
	return out
}

func waitUntil(ctx context.Context, at time.Time) {
	t := time.NewTimer(time.Until(at))
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// monitorTraffic posts tasks until stopped: a burst of concurrent requests every 100 ms, so
// some queue behind in-flight publishes and go out in bulk. At most 24 are in flight, which
// bounds it while the publisher answers slowly.
type monitorTraffic struct {
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once

	mu    sync.Mutex
	codes map[int]int
	errs  int
}

func startTraffic(publisher *harness.App) *monitorTraffic {
	ctx, cancel := context.WithCancel(context.Background())
	m := &monitorTraffic{cancel: cancel, done: make(chan struct{}), codes: map[int]int{}}
	sem := make(chan struct{}, 24)
	go func() {
		defer close(m.done)
		var wg sync.WaitGroup
		defer wg.Wait()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		n := 0
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			for range 6 {
				select {
				case sem <- struct{}{}:
				default:
					continue
				}
				n++
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					defer func() { <-sem }()
					_, r, err := suite.CreateTask(ctx, publisher, fmt.Sprintf("monitoring %d", i))
					m.mu.Lock()
					defer m.mu.Unlock()
					switch {
					case err != nil && ctx.Err() != nil:
					case err != nil:
						m.errs++
					default:
						m.codes[r.Status]++
					}
				}(n)
			}
		}
	}()
	return m
}

func (m *monitorTraffic) stop() {
	m.once.Do(func() {
		m.cancel()
		<-m.done
	})
}

func (m *monitorTraffic) summary() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	codes := make([]int, 0, len(m.codes))
	for c := range m.codes {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	var parts []string
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%d×%d", m.codes[c], c))
	}
	return fmt.Sprintf("POST /tasks %s, %d transport errors", strings.Join(parts, " "), m.errs)
}

// faultMark is a moment the plot marks with a vertical line: a fault injected or cleared.
type faultMark struct {
	at    time.Time
	label string
}

var legendLabel = regexp.MustCompile(`\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}`)

// plotDashboard draws every panel from a range query over [from, to] into one PNG, two
// panels a row, with the faults as dashed vertical lines: the picture of the dashboard
// the README shows.
func plotDashboard(ctx context.Context, prom *harness.Prometheus, d grafanaDashboard, from, to time.Time, marks []faultMark, out string) error {
	const cols = 2
	rows := (len(d.Panels) + 1 + cols - 1) / cols // the last tile lists the faults
	grid := make([][]*plot.Plot, rows)
	for i := range grid {
		grid[i] = make([]*plot.Plot, cols)
	}
	for i, panel := range d.Panels {
		p := plot.New()
		p.Title.Text = panel.Title
		p.X.Label.Text = "seconds into the test"
		p.Legend.Top, p.Legend.Left = true, true
		p.Legend.TextStyle.Font.Size = vg.Points(7)
		p.Add(plotter.NewGrid())
		colour := 0
		for _, tg := range panel.Targets {
			expr, err := panelQuery(d, tg.Expr)
			if err != nil {
				return err
			}
			series, err := prom.QueryRange(ctx, expr, from, to, time.Second)
			if err != nil {
				return err
			}
			for _, s := range series {
				name := legendLabel.ReplaceAllStringFunc(tg.LegendFormat, func(m string) string {
					return s.Metric[legendLabel.FindStringSubmatch(m)[1]]
				})
				// A NaN (a quantile of nothing) breaks the line rather than being drawn.
				var segments []plotter.XYs
				var cur plotter.XYs
				for j, v := range s.Values {
					if math.IsNaN(v) || math.IsInf(v, 0) {
						if len(cur) > 0 {
							segments, cur = append(segments, cur), nil
						}
						continue
					}
					cur = append(cur, plotter.XY{X: s.Times[j].Sub(from).Seconds(), Y: v})
				}
				if len(cur) > 0 {
					segments = append(segments, cur)
				}
				for k, seg := range segments {
					line, err := plotter.NewLine(seg)
					if err != nil {
						return err
					}
					line.Color, line.Width = plotutil.Color(colour), vg.Points(1)
					p.Add(line)
					if k == 0 {
						p.Legend.Add(name, line)
					}
				}
				if len(segments) > 0 {
					colour++
				}
			}
		}
		p.Y.Min = 0
		if p.Y.Max <= 0 {
			p.Y.Max = 1
		}
		p.Y.Max *= 1.5 // room for the legend above the lines
		p.X.Min, p.X.Max = 0, to.Sub(from).Seconds()
		for _, m := range marks {
			x := m.at.Sub(from).Seconds()
			line, err := plotter.NewLine(plotter.XYs{{X: x, Y: p.Y.Min}, {X: x, Y: p.Y.Max}})
			if err != nil {
				return err
			}
			line.Color, line.Dashes = color.Gray{Y: 128}, []vg.Length{vg.Points(3), vg.Points(3)}
			p.Add(line)
		}
		grid[i/cols][i%cols] = p
	}
	key, err := faultKey(marks, from)
	if err != nil {
		return err
	}
	grid[len(d.Panels)/cols][len(d.Panels)%cols] = key
	img := vgimg.New(vg.Length(cols)*7*vg.Inch, vg.Length(rows)*3*vg.Inch)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	canvases := plot.Align(grid, tiles, dc)
	for r := range grid {
		for c := range grid[r] {
			if grid[r][c] != nil {
				grid[r][c].Draw(canvases[r][c])
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o750); err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// faultKey is a tile without axes that names the dashed lines.
func faultKey(marks []faultMark, from time.Time) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Dashed lines"
	p.HideAxes()
	var xys plotter.XYs
	var texts []string
	for i, m := range marks {
		xys = append(xys, plotter.XY{X: 0, Y: float64(len(marks) - i)})
		texts = append(texts, fmt.Sprintf("%3.0f s  %s", m.at.Sub(from).Seconds(), m.label))
	}
	labels, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: texts})
	if err != nil {
		return nil, err
	}
	p.Add(labels)
	p.X.Min, p.X.Max = 0, 1
	p.Y.Min, p.Y.Max = 0, float64(len(marks)+1)
	return p, nil
}

// TestMonitoringChartObjects validates the dashboard ConfigMap and the PrometheusRule offline
// against the API server's schemas and the Prometheus Operator's CRD, with the values the
// monitoring test uses and with the defaults.
func TestMonitoringChartObjects(t *testing.T) {
	helmchart.Helm(t)
	v := helmchart.ObjectValidator(t)
	on := []string{"--set", "monitoring.dashboard.enabled=true", "--set", "monitoring.prometheusRule.enabled=true"}
	for name, args := range map[string][]string{
		"defaults":      on,
		"short-windows": append(append([]string{}, on...), "--set", "monitoring.prometheusRule.retryRatio.window=10s", "--set", "monitoring.prometheusRule.retryRatio.for=3s"),
		"other-label": append(append([]string{}, on...), "--set", "monitoring.dashboard.labelKey=dashboards",
			"--set", "monitoring.dashboard.labelValue=taskevents", "--set", "monitoring.dashboard.namespace=grafana"),
	} {
		t.Run(name, func(t *testing.T) {
			kinds := map[string]int{}
			for _, o := range helmchart.Render(t, args...) {
				kinds[o.Kind()]++
				if err := v.Validate(o); err != nil {
					t.Errorf("%s: %v", o, err)
				}
				if o.Kind() != "ConfigMap" {
					continue
				}
				key, value, ns := "grafana_dashboard", "1", ""
				if name == "other-label" {
					key, value, ns = "dashboards", "taskevents", "grafana"
				}
				if got := helmchart.DigString(o, "metadata", "labels", key); got != value {
					t.Errorf("%s: label %s=%q, want %q", o, key, got, value)
				}
				if got := helmchart.DigString(o, "metadata", "namespace"); got != ns {
					t.Errorf("%s: namespace %q, want %q", o, got, ns)
				}
				if !json.Valid([]byte(helmchart.DigString(o, "data", "taskevents.json"))) {
					t.Errorf("%s: data taskevents.json is not JSON", o)
				}
			}
			if kinds["ConfigMap"] != 1 || kinds["PrometheusRule"] != 1 {
				t.Errorf("rendered %v, want one dashboard ConfigMap and one PrometheusRule", kinds)
			}
		})
	}
	t.Run("off-by-default", func(t *testing.T) {
		for _, o := range helmchart.Render(t) {
			if o.Kind() == "PrometheusRule" || (o.Kind() == "ConfigMap" && strings.HasSuffix(o.Name(), "-dashboard")) {
				t.Errorf("%s rendered without monitoring.*.enabled", o)
			}
		}
	})
	t.Run("bad-rule-is-rejected", func(t *testing.T) {
		objs, err := helmchart.DecodeObjects([]byte(`apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: {name: bad}
spec: {groups: [{name: g, rules: [{alert: A, expr: vector(1), for: 5 minutes}]}]}`))
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Validate(objs[0]); err == nil || !strings.Contains(err.Error(), "for") {
			t.Errorf("a PrometheusRule with for: 5 minutes passed the CRD's schema: %v", err)
		}
	})
}
