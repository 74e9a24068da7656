package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// ScrapeJob is one static scrape job: every target gets job=Name and the Labels.
type ScrapeJob struct {
	Name    string
	Targets []string // host:port
	Labels  map[string]string
}

// PrometheusOptions describe one Prometheus server.
type PrometheusOptions struct {
	Jobs      []ScrapeJob
	RuleFiles []string // alerting and recording rule files, loaded as they are
	// Interval is the scrape and rule evaluation interval; 0 means 1s, short enough for a
	// test's rate windows of a few seconds.
	Interval time.Duration
}

// Prometheus is a running Prometheus server (tools/prometheus) with its TSDB under the
// harness's directory.
type Prometheus struct {
	*Process
	URL    string
	client *http.Client
}

// StartPrometheus writes prometheus.yml for the jobs and rule files, runs Prometheus on a
// free loopback port and waits until /-/ready answers 200. Bins.Prometheus is the directory
// that holds the prometheus binary.
func (h *Harness) StartPrometheus(ctx context.Context, o PrometheusOptions) (*Prometheus, error) {
	if h.Bins.Prometheus == "" {
		return nil, errors.New("PROMETHEUS is not set: run `make test-e2e`, which builds Prometheus (tools/prometheus/build.sh) and sets it")
	}
	bin := filepath.Join(h.Bins.Prometheus, "prometheus")
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("prometheus binary: %w", err)
	}
	if o.Interval == 0 {
		o.Interval = time.Second
	}
	dir := filepath.Join(h.Dir, "prometheus")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	cfg, err := prometheusConfig(o)
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	p, err := h.startIn("prometheus", dir, nil, environ(), bin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+fmt.Sprintf("127.0.0.1:%d", port),
		// Resolved alerts are sent to no Alertmanager; there is none.
		"--log.level=warn")
	if err != nil {
		return nil, err
	}
	prom := &Prometheus{Process: p, URL: fmt.Sprintf("http://127.0.0.1:%d", port), client: &http.Client{Timeout: 5 * time.Second}}
	err = Poll(ctx, 60*time.Second, 100*time.Millisecond, func(ctx context.Context) error {
		if err := p.exitedErr("was ready"); err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, prom.URL+"/-/ready", nil)
		if err != nil {
			return Stop(err)
		}
		resp, err := prom.client.Do(req)
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/-/ready answered %d", resp.StatusCode)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("prometheus: %w\n%s", err, p.Tail(30))
	}
	return prom, nil
}

func prometheusConfig(o PrometheusOptions) ([]byte, error) {
	type staticConfig struct {
		Targets []string          `yaml:"targets"`
		Labels  map[string]string `yaml:"labels,omitempty"`
	}
	type scrapeConfig struct {
		JobName       string         `yaml:"job_name"`
		StaticConfigs []staticConfig `yaml:"static_configs"`
	}
	interval := o.Interval.String()
	cfg := struct {
		Global struct {
			ScrapeInterval     string `yaml:"scrape_interval"`
			ScrapeTimeout      string `yaml:"scrape_timeout"`
			EvaluationInterval string `yaml:"evaluation_interval"`
		} `yaml:"global"`
		RuleFiles     []string       `yaml:"rule_files,omitempty"`
		ScrapeConfigs []scrapeConfig `yaml:"scrape_configs"`
	}{RuleFiles: o.RuleFiles}
	cfg.Global.ScrapeInterval, cfg.Global.ScrapeTimeout, cfg.Global.EvaluationInterval = interval, interval, interval
	for _, j := range o.Jobs {
		if j.Name == "" || len(j.Targets) == 0 {
			return nil, fmt.Errorf("scrape job %q has no name or no targets", j.Name)
		}
		cfg.ScrapeConfigs = append(cfg.ScrapeConfigs, scrapeConfig{JobName: j.Name,
			StaticConfigs: []staticConfig{{Targets: j.Targets, Labels: j.Labels}}})
	}
	return yaml.Marshal(cfg)
}

// Sample is one series of an instant query's result.
type Sample struct {
	Metric map[string]string
	Value  float64
}

func (s Sample) String() string {
	names := make([]string, 0, len(s.Metric))
	for k := range s.Metric {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", k, s.Metric[k])
	}
	b.WriteString("} ")
	b.WriteString(strconv.FormatFloat(s.Value, 'g', 4, 64))
	return b.String()
}

// Series is one series of a range query's result.
type Series struct {
	Metric map[string]string
	Times  []time.Time
	Values []float64
}

// Query runs an instant query now and returns its vector (a scalar result is one sample
// without labels).
func (p *Prometheus) Query(ctx context.Context, expr string) ([]Sample, error) {
	var data struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	}
	if err := p.get(ctx, "/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		return nil, err
	}
	switch data.ResultType {
	case "vector":
		var raw []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(data.Result, &raw); err != nil {
			return nil, err
		}
		out := make([]Sample, 0, len(raw))
		for _, r := range raw {
			v, err := sampleValue(r.Value[1])
			if err != nil {
				return nil, err
			}
			out = append(out, Sample{Metric: r.Metric, Value: v})
		}
		return out, nil
	case "scalar":
		var raw [2]any
		if err := json.Unmarshal(data.Result, &raw); err != nil {
			return nil, err
		}
		v, err := sampleValue(raw[1])
		return []Sample{{Metric: map[string]string{}, Value: v}}, err
	default:
		return nil, fmt.Errorf("query %q: result type %q, want a vector", expr, data.ResultType)
	}
}

// QueryRange runs a range query from start to end, one point every step.
func (p *Prometheus) QueryRange(ctx context.Context, expr string, start, end time.Time, step time.Duration) ([]Series, error) {
	var data struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Values [][2]any          `json:"values"`
		} `json:"result"`
	}
	q := url.Values{"query": {expr}, "start": {unixSeconds(start)}, "end": {unixSeconds(end)},
		"step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}}
	if err := p.get(ctx, "/api/v1/query_range", q, &data); err != nil {
		return nil, err
	}
	out := make([]Series, 0, len(data.Result))
	for _, r := range data.Result {
		s := Series{Metric: r.Metric}
		for _, pt := range r.Values {
			ts, ok := pt[0].(float64)
			if !ok {
				return nil, fmt.Errorf("query_range %q: timestamp %v", expr, pt[0])
			}
			v, err := sampleValue(pt[1])
			if err != nil {
				return nil, err
			}
			s.Times = append(s.Times, time.UnixMilli(int64(math.Round(ts*1000))))
			s.Values = append(s.Values, v)
		}
		out = append(out, s)
	}
	return out, nil
}

// Alert is one entry of /api/v1/alerts: a pending or firing alert.
type Alert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"` // "pending" or "firing"
	Value       string            `json:"value"`
}

// Name is the alert's alertname label.
func (a Alert) Name() string { return a.Labels["alertname"] }

// Alerts returns every pending and firing alert.
func (p *Prometheus) Alerts(ctx context.Context) ([]Alert, error) {
	var data struct {
		Alerts []Alert `json:"alerts"`
	}
	err := p.get(ctx, "/api/v1/alerts", nil, &data)
	return data.Alerts, err
}

// Rule is one loaded rule with the health of its last evaluation.
type Rule struct {
	Group     string
	Name      string `json:"name"`
	Type      string `json:"type"` // "alerting" or "recording"
	Query     string `json:"query"`
	Health    string `json:"health"` // "ok", "err" or "unknown" (not evaluated yet)
	LastError string `json:"lastError"`
}

// Rules returns every loaded rule.
func (p *Prometheus) Rules(ctx context.Context) ([]Rule, error) {
	var data struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []Rule `json:"rules"`
		} `json:"groups"`
	}
	if err := p.get(ctx, "/api/v1/rules", nil, &data); err != nil {
		return nil, err
	}
	var out []Rule
	for _, g := range data.Groups {
		for _, r := range g.Rules {
			r.Group = g.Name
			out = append(out, r)
		}
	}
	return out, nil
}

// Target is one active scrape target.
type Target struct {
	ScrapeURL string            `json:"scrapeUrl"`
	Health    string            `json:"health"` // "up", "down" or "unknown" (not scraped yet)
	LastError string            `json:"lastError"`
	Labels    map[string]string `json:"labels"`
}

// Job is the target's job label.
func (t Target) Job() string { return t.Labels["job"] }

// Targets returns every active scrape target with the health of its last scrape.
func (p *Prometheus) Targets(ctx context.Context) ([]Target, error) {
	var data struct {
		ActiveTargets []Target `json:"activeTargets"`
	}
	err := p.get(ctx, "/api/v1/targets", url.Values{"state": {"active"}}, &data)
	return data.ActiveTargets, err
}

// WaitTargetsUp waits until every active target's last scrape succeeded.
func (p *Prometheus) WaitTargetsUp(ctx context.Context) error {
	return Poll(ctx, 0, 200*time.Millisecond, func(ctx context.Context) error {
		if err := p.exitedErr("scraped every target"); err != nil {
			return err
		}
		ts, err := p.Targets(ctx)
		if err != nil {
			return err
		}
		if len(ts) == 0 {
			return errors.New("no active targets")
		}
		var down []string
		for _, t := range ts {
			if t.Health != "up" {
				down = append(down, fmt.Sprintf("%s %s: %s %s", t.Job(), t.ScrapeURL, t.Health, t.LastError))
			}
		}
		if len(down) > 0 {
			return fmt.Errorf("targets not up: %s", strings.Join(down, "; "))
		}
		return nil
	})
}

// get calls one API endpoint and decodes its data field; an error answer names
// Prometheus's errorType and error.
func (p *Prometheus) get(ctx context.Context, path string, q url.Values, data any) error {
	u := p.URL + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return err
	}
	var env struct {
		Status    string          `json:"status"`
		Data      json.RawMessage `json:"data"`
		ErrorType string          `json:"errorType"`
		Error     string          `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("GET %s: %d %.200s: %w", path, resp.StatusCode, body, err)
	}
	if env.Status != "success" {
		return fmt.Errorf("GET %s %s: %d %s: %s", path, q.Get("query"), resp.StatusCode, env.ErrorType, env.Error)
	}
	return json.Unmarshal(env.Data, data)
}

// sampleValue parses a sample's value, which the API sends as a string ("NaN" and "+Inf"
// included).
func sampleValue(v any) (float64, error) {
	s, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("sample value %v is not a string", v)
	}
	return strconv.ParseFloat(s, 64)
}

func unixSeconds(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64)
}
