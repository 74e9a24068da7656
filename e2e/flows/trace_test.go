package flows

// One task, one trace: the publisher's span, its sidecar's, the delivering sidecar's and the
// worker's, joined by the W3C traceparent the client sent, as a real Jaeger stores them.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/taskevents/taskevents/e2e/internal/helmchart"
	"github.com/taskevents/taskevents/e2e/internal/suite"
	"github.com/taskevents/taskevents/tools/harness"
)

// traceLink is one hop of a task's trace, in causal order.
type traceLink struct {
	what      string // for messages
	service   string
	operation string // "" for any
}

func traceLinks() []traceLink {
	return []traceLink{
		{"the publisher's span", "taskevents-publisher", "POST /tasks"},
		{"the publishing sidecar's span", suite.Contract.PublisherAppID, ""},
		{"the delivering sidecar's span", suite.Contract.WorkerAppID, ""},
		{"the worker's span", "taskevents-worker", ""},
	}
}

func TestTrace(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	h := suite.NewHarness(t)
	jaeger, err := h.StartJaeger(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sys, err := h.StartSystem(ctx, suite.StartBroker(ctx, t, h, "redis"), harness.SystemOptions{Jaeger: jaeger})
	if err != nil {
		t.Fatal(err)
	}

	traceID, parentID := randomHex(t, 16), randomHex(t, 8)
	r, err := suite.Post(ctx, sys.Publisher.URL+"/tasks", "application/json", `{"title": "Follow me"}`,
		map[string]string{"traceparent": "00-" + traceID + "-" + parentID + "-01"})
	if err != nil || r.Status != 202 {
		t.Fatalf("POST /tasks with a traceparent: %d %s (%v), want 202", r.Status, r.Body, err)
	}

	// The exporters batch (every few seconds), so the trace fills up over time.
	var tr *harness.Trace
	var chain []harness.Span
	err = harness.Poll(ctx, 60*time.Second, 500*time.Millisecond, func(ctx context.Context) error {
		got, err := jaeger.Trace(ctx, traceID)
		if err != nil {
			return err
		}
		tr = got
		chain, err = traceChain(got, parentID, traceLinks())
		return err
	})
	if err != nil {
		msg := fmt.Sprintf("trace %s never held publisher → sidecar → sidecar → worker: %v", traceID, err)
		if tr != nil {
			msg += "\nspans in the trace:\n" + describeSpans(tr)
		}
		t.Fatal(msg)
	}
	for i := 1; i < len(chain); i++ {
		if chain[i].Start.Before(chain[i-1].Start) {
			t.Errorf("%s (%s) starts %s before %s (%s)", traceLinks()[i].what, chain[i].OperationName,
				chain[i-1].Start.Sub(chain[i].Start), traceLinks()[i-1].what, chain[i-1].OperationName)
		}
	}
	if out := os.Getenv("TRACE_EXAMPLE_OUT"); out != "" {
		if err := os.WriteFile(out, trimTrace(t, tr.Raw), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote the trace to %s", out)
	}
	services := map[string]bool{}
	for _, s := range tr.Spans {
		services[s.Service] = true
	}
	names := make([]string, 0, len(services))
	for s := range services {
		names = append(names, s)
	}
	sort.Strings(names)
	t.Logf("trace %s:\n%s", traceID, describeSpans(tr))
	fmt.Printf("trace: spans=%d services=%s publish_to_handled_ms=%.1f\n", len(tr.Spans), strings.Join(names, ","),
		float64(chain[len(chain)-1].End().Sub(chain[0].Start).Microseconds())/1000)
}

// traceChain finds links in tr, each a descendant of the one before, the first a child of
// the client's span parentID. For each link it takes the earliest candidate: the span that
// received the hop, not the calls made while handling it (state store, dedupe). Its error
// names the first link missing.
func traceChain(tr *harness.Trace, parentID string, links []traceLink) ([]harness.Span, error) {
	spans := slices.Clone(tr.Spans)
	sort.SliceStable(spans, func(i, j int) bool { return spans[i].Start.Before(spans[j].Start) })
	var chain []harness.Span
	for i, l := range links {
		found := false
		for _, s := range spans {
			if s.Service != l.service || (l.operation != "" && s.OperationName != l.operation) {
				continue
			}
			if i == 0 && !slices.Contains(s.Parents, parentID) {
				continue
			}
			if i > 0 && !tr.DescendsFrom(s, chain[i-1]) {
				continue
			}
			chain, found = append(chain, s), true
			break
		}
		if !found {
			want := fmt.Sprintf("service %s", l.service)
			if l.operation != "" {
				want += fmt.Sprintf(", operation %q", l.operation)
			}
			if i == 0 {
				return nil, fmt.Errorf("missing %s (%s, child of the client's span %s)", l.what, want, parentID)
			}
			return nil, fmt.Errorf("missing %s (%s, descendant of %s %q)", l.what, want, links[i-1].what, chain[i-1].OperationName)
		}
	}
	return chain, nil
}

func describeSpans(tr *harness.Trace) string {
	spans := slices.Clone(tr.Spans)
	sort.SliceStable(spans, func(i, j int) bool { return spans[i].Start.Before(spans[j].Start) })
	var b strings.Builder
	for _, s := range spans {
		fmt.Fprintf(&b, "  %s %-22s %-40q parents=%v start=%s dur=%s\n", s.SpanID, s.Service, s.OperationName,
			s.Parents, s.Start.Format("15:04:05.000000"), s.Duration)
	}
	return b.String()
}

// trimTrace keeps what the README's example needs from the query API's answer: the spans
// (without logs and warnings) in start order, and each process's service name (not the
// host's name and addresses).
func trimTrace(t *testing.T, raw []byte) []byte {
	t.Helper()
	var doc struct {
		Data []map[string]any `json:"data"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil || len(doc.Data) == 0 {
		t.Fatalf("trace JSON: %v", errors.Join(err, errors.New("no data")))
	}
	d := doc.Data[0]
	spans, _ := d["spans"].([]any)
	for _, s := range spans {
		m, _ := s.(map[string]any)
		delete(m, "logs")
		delete(m, "warnings")
	}
	sort.SliceStable(spans, func(i, j int) bool {
		a, _ := spans[i].(map[string]any)["startTime"].(float64)
		b, _ := spans[j].(map[string]any)["startTime"].(float64)
		return a < b
	})
	procs, _ := d["processes"].(map[string]any)
	for id, p := range procs {
		m, _ := p.(map[string]any)
		procs[id] = map[string]any{"serviceName": m["serviceName"]}
	}
	out, err := json.MarshalIndent(map[string]any{"data": []any{map[string]any{
		"traceID": d["traceID"], "spans": spans, "processes": procs}}}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// The chart's side of tracing: tracing.enabled renders a valid Configuration that both
// Deployments name, and with an OTLP endpoint both apps get the OTEL_* variables that point
// their own spans at the same collector; the values that cannot work together fail.
func TestChartTracing(t *testing.T) {
	helmchart.Helm(t)
	v := helmchart.ObjectValidator(t)
	objs := helmchart.Render(t, "--set", "tracing.enabled=true", "--set", "tracing.samplingRate=0.25",
		"--set", "tracing.otel.endpointAddress=collector.observability:4317", "--set", "tracing.otel.protocol=grpc",
		"--set", "tracing.zipkin.endpointAddress=http://zipkin.observability:9411/api/v2/spans")
	var config helmchart.Object
	deployments := map[string]helmchart.Object{}
	for _, o := range objs {
		switch o.Kind() {
		case "Configuration":
			config = o
		case "Deployment":
			deployments[helmchart.DigString(o, "metadata", "labels", "app.kubernetes.io/component")] = o
		}
	}
	if config == nil {
		t.Fatal("tracing.enabled renders no Configuration")
	}
	if err := v.Validate(config); err != nil {
		t.Errorf("%s: %v", config, err)
	}
	for path, want := range map[string]any{"samplingRate": "0.25", "otel.endpointAddress": "collector.observability:4317",
		"otel.protocol": "grpc", "otel.isSecure": false, "zipkin.endpointAddress": "http://zipkin.observability:9411/api/v2/spans"} {
		if got := helmchart.Dig(config, append([]string{"spec", "tracing"}, strings.Split(path, ".")...)...); got != want {
			t.Errorf("Configuration spec.tracing.%s = %v, want %v", path, got, want)
		}
	}
	for app, service := range map[string]string{"publisher": "taskevents-publisher", "worker": "taskevents-worker"} {
		d := deployments[app]
		if got := helmchart.DigString(d, "spec", "template", "metadata", "annotations", "dapr.io/config"); got != config.Name() {
			t.Errorf("%s: dapr.io/config %q, want the Configuration %q", app, got, config.Name())
		}
		env := map[string]string{}
		for _, c := range helmchart.AsList(helmchart.Dig(d, "spec", "template", "spec", "containers")) {
			if helmchart.DigString(c, "name") == app {
				for _, e := range helmchart.AsList(helmchart.Dig(c, "env")) {
					env[helmchart.DigString(e, "name")] = helmchart.DigString(e, "value")
				}
			}
		}
		for k, want := range map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector.observability:4317",
			"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_SERVICE_NAME": service} {
			if env[k] != want {
				t.Errorf("%s: %s=%q, want %q", app, k, env[k], want)
			}
		}
	}

	// Off (the default): no Configuration, no annotation, no OTEL_* variable.
	for _, o := range helmchart.Render(t) {
		if o.Kind() == "Configuration" {
			t.Errorf("the default values render %s", o)
		}
		if o.Kind() == "Deployment" {
			if ann := helmchart.DigString(o, "spec", "template", "metadata", "annotations", "dapr.io/config"); ann != "" {
				t.Errorf("%s: dapr.io/config %q with tracing off", o, ann)
			}
		}
	}
	// Without an endpoint the sidecars still continue the trace context; the apps get nothing to export to.
	for _, o := range helmchart.Render(t, "--set", "tracing.enabled=true") {
		if o.Kind() == "Configuration" && helmchart.Dig(o, "spec", "tracing", "otel") != nil {
			t.Errorf("%s has an otel exporter without tracing.otel.endpointAddress", o)
		}
		if o.Kind() == "Deployment" && strings.Contains(fmt.Sprint(helmchart.Dig(o, "spec", "template", "spec", "containers")), "OTEL_") {
			t.Errorf("%s sets OTEL_* without tracing.otel.endpointAddress", o)
		}
	}

	for name, tt := range map[string]struct {
		args []string
		want string
	}{
		"config and tracing.enabled": {[]string{"--set", "tracing.enabled=true", "--set", "worker.dapr.config=mine"},
			"worker.dapr.config (mine) and tracing.enabled"},
		"OTEL env set twice": {[]string{"--set", "tracing.enabled=true", "--set", "tracing.otel.endpointAddress=c:4318",
			"--set", "publisher.env.OTEL_SERVICE_NAME=x"}, "publisher.env.OTEL_SERVICE_NAME"},
		"endpoint with a scheme": {[]string{"--set", "tracing.otel.endpointAddress=http://c:4318"}, "endpointAddress"},
		"sampling above 1":       {[]string{"--set-string", "tracing.samplingRate=2"}, "samplingRate"},
		"unknown protocol":       {[]string{"--set", "tracing.otel.protocol=thrift"}, "protocol"},
	} {
		t.Run(name, func(t *testing.T) {
			out, err := helmchart.RunHelm(t, append([]string{"template", "taskevents", "."}, tt.args...)...)
			if err == nil || !strings.Contains(out, tt.want) {
				t.Errorf("helm template %v: %v, want an error naming %q:\n%s", tt.args, err, tt.want, out)
			}
		})
	}
}
