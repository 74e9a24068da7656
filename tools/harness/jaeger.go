package harness

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"
)

// TracingConfigFile is the sidecars' tracing Configuration that GitOps applies and the
// chart's tracing.enabled renders alike (relative to the repository root).
const TracingConfigFile = "components/tracing.yaml"

// TracingConfig writes (once per endpoint) the local copy of components/tracing.yaml for
// daprd's --config and returns its path: samplingRate "1", so that every local event
// carries a real traceparent, and the OTLP/HTTP exporter pointed at otlpHTTP (host:port, a
// local Jaeger's OTLPHTTPAddr), or no exporter when otlpHTTP is empty (the committed
// address is a cluster's, unreachable here). Everything else is the committed file's.
func (h *Harness) TracingConfig(otlpHTTP string) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if p, ok := h.tracingConfigs[otlpHTTP]; ok {
		return p, nil
	}
	src := filepath.Join(h.Root, TracingConfigFile)
	raw, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	out, err := localTracingConfig(raw, otlpHTTP)
	if err != nil {
		return "", fmt.Errorf("%s: %w", src, err)
	}
	sum := sha256.Sum256([]byte(otlpHTTP))
	path := filepath.Join(h.Dir, "tracing-"+hex.EncodeToString(sum[:4])+".yaml")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		return "", err
	}
	if h.tracingConfigs == nil {
		h.tracingConfigs = map[string]string{}
	}
	h.tracingConfigs[otlpHTTP] = path
	return path, nil
}

// localTracingConfig is TracingConfig's rewrite of the committed Configuration.
func localTracingConfig(raw []byte, otlpHTTP string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 || lookup(doc.Content[0], "kind") == nil || lookup(doc.Content[0], "kind").Value != "Configuration" {
		return nil, errors.New("not a Configuration")
	}
	tracing := lookup(lookup(doc.Content[0], "spec"), "tracing")
	if tracing == nil || tracing.Kind != yaml.MappingNode {
		return nil, errors.New("no spec.tracing")
	}
	str := func(v string) *yaml.Node {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v, Style: yaml.DoubleQuotedStyle}
	}
	var content []*yaml.Node
	for i := 0; i+1 < len(tracing.Content); i += 2 {
		switch tracing.Content[i].Value {
		case "otel", "zipkin": // replaced below
		case "samplingRate":
			content = append(content, tracing.Content[i], str("1"))
		default:
			content = append(content, tracing.Content[i], tracing.Content[i+1])
		}
	}
	if lookup(tracing, "samplingRate") == nil {
		content = append(content, str("samplingRate"), str("1"))
	}
	if otlpHTTP != "" {
		content = append(content, &yaml.Node{Kind: yaml.ScalarNode, Value: "otel"}, &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{
			{Kind: yaml.ScalarNode, Value: "endpointAddress"}, str(otlpHTTP),
			{Kind: yaml.ScalarNode, Value: "isSecure"}, {Kind: yaml.ScalarNode, Tag: "!!bool", Value: "false"},
			{Kind: yaml.ScalarNode, Value: "protocol"}, str("http"),
		}})
	}
	tracing.Content = content
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	return out.Bytes(), enc.Close()
}

// Jaeger is a running Jaeger v2 (tools/jaeger): OTLP (HTTP and gRPC) and Zipkin receivers
// in front of an in-memory store, and the query API, all on loopback.
type Jaeger struct {
	*Process
	// OTLPHTTPAddr is the OTLP/HTTP receiver, host:port: daprd's otel endpointAddress with
	// protocol http.
	OTLPHTTPAddr string
	// OTLPGRPCAddr is the OTLP/gRPC receiver, host:port.
	OTLPGRPCAddr string
	// ZipkinURL is the Zipkin v2 receiver, daprd's zipkin endpointAddress.
	ZipkinURL string
	// QueryURL serves the query API (/api/traces/<id>, /api/services) and, in this build,
	// Jaeger's placeholder page instead of the UI (the module ships no UI assets).
	QueryURL string

	client *http.Client
}

// OTLPEndpoint is the value for an app's OTEL_EXPORTER_OTLP_ENDPOINT (OTLP/HTTP: the SDK
// appends /v1/traces).
func (j *Jaeger) OTLPEndpoint() string { return "http://" + j.OTLPHTTPAddr }

// JaegerOptions choose StartJaegerWith's ports; 0 picks a free one.
type JaegerOptions struct {
	QueryPort int
}

// StartJaeger runs Bins.Jaeger with an in-memory store on free loopback ports and waits until
// its health check says every pipeline runs.
func (h *Harness) StartJaeger(ctx context.Context) (*Jaeger, error) {
	return h.StartJaegerWith(ctx, JaegerOptions{})
}

// StartJaegerWith is StartJaeger with a fixed query port (make run's, for the URL it prints).
func (h *Harness) StartJaegerWith(ctx context.Context, o JaegerOptions) (*Jaeger, error) {
	if h.Bins.Jaeger == "" {
		return nil, errors.New("JAEGER is not set: `make test-e2e` builds Jaeger (tools/jaeger/build.sh) and sets it")
	}
	if _, err := os.Stat(h.Bins.Jaeger); err != nil {
		return nil, fmt.Errorf("jaeger binary: %w", err)
	}
	ports := map[string]int{"query": o.QueryPort}
	for _, name := range []string{"query", "query-grpc", "otlp-http", "otlp-grpc", "zipkin", "health"} {
		p, err := OrFreePort(ports[name])
		if err != nil {
			return nil, err
		}
		ports[name] = p
	}
	addr := func(name string) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[name])) }
	dir, err := os.MkdirTemp(h.Dir, "jaeger-")
	if err != nil {
		return nil, err
	}
	config := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(config, []byte(jaegerConfig(addr)), 0o600); err != nil {
		return nil, err
	}
	p, err := h.start("jaeger", environ(), h.Bins.Jaeger, "--config", "file:"+config)
	if err != nil {
		return nil, err
	}
	j := &Jaeger{Process: p, OTLPHTTPAddr: addr("otlp-http"), OTLPGRPCAddr: addr("otlp-grpc"),
		ZipkinURL: "http://" + addr("zipkin") + "/api/v2/spans", QueryURL: "http://" + addr("query"),
		client: &http.Client{Timeout: 5 * time.Second}}
	health := "http://" + addr("health") + "/"
	err = Poll(ctx, 60*time.Second, 50*time.Millisecond, func(ctx context.Context) error {
		if err := p.exitedErr("became ready"); err != nil {
			return err
		}
		// 503 until the collector has started every receiver, processor and exporter.
		return getStatus(ctx, j.client, health, http.StatusOK)
	})
	if err != nil {
		return nil, fmt.Errorf("jaeger never became ready at %s: %w\n%s", health, err, p.Tail(30))
	}
	return j, nil
}

// jaegerConfig is the collector configuration: one traces pipeline from the OTLP and Zipkin
// receivers into the in-memory store, the query extension reading that store, the legacy
// health check (200 only once every pipeline runs), and no self-telemetry (its metrics'
// default port 8888 would clash between two runs).
func jaegerConfig(addr func(string) string) string {
	return fmt.Sprintf(`service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp, zipkin]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
extensions:
  healthcheckv2:
    endpoint: %q
    path: /
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
  jaeger_query:
    # On by default in v2: Jaeger traces its own queries to localhost:4317, which holds
    # every stop for its 10 s export timeout when nothing listens there.
    enable_tracing: false
    storage:
      traces: memstore
    http:
      endpoint: %q
    grpc:
      endpoint: %q
receivers:
  otlp:
    protocols:
      http:
        endpoint: %q
      grpc:
        endpoint: %q
  zipkin:
    endpoint: %q
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`, addr("health"), addr("query"), addr("query-grpc"), addr("otlp-http"), addr("otlp-grpc"), addr("zipkin"))
}

// Trace is one trace as Jaeger's query API returns it, reduced to what the tests check.
type Trace struct {
	TraceID string
	Spans   []Span
	// Raw is the query API's answer as it came.
	Raw []byte
}

// Span is one span of a Trace.
type Span struct {
	SpanID        string
	OperationName string
	Service       string // the process's service.name
	// Parents are the span ids this span references (CHILD_OF or FOLLOWS_FROM) in the same trace.
	Parents  []string
	Start    time.Time
	Duration time.Duration
	Tags     map[string]any
}

// End is when the span ended.
func (s Span) End() time.Time { return s.Start.Add(s.Duration) }

// ErrTraceNotFound is Trace's error while Jaeger holds no span of the trace.
var ErrTraceNotFound = errors.New("trace not found")

// Trace reads traceID (32 hex digits) from the query API (/api/traces/<id>, the v1 JSON).
func (j *Jaeger) Trace(ctx context.Context, traceID string) (*Trace, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.QueryURL+"/api/traces/"+traceID, nil)
	if err != nil {
		return nil, err
	}
	resp, err := j.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusNotFound {
		return nil, ErrTraceNotFound
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /api/traces/%s: %s: %.300s", traceID, resp.Status, raw)
	}
	return parseTrace(raw)
}

// parseTrace reads the query API's v1 JSON: {"data": [{"traceID", "spans": [...],
// "processes": {"p1": {"serviceName"}}}]}, times in microseconds.
func parseTrace(raw []byte) (*Trace, error) {
	var doc struct {
		Data []struct {
			TraceID string `json:"traceID"`
			Spans   []struct {
				TraceID       string `json:"traceID"`
				SpanID        string `json:"spanID"`
				OperationName string `json:"operationName"`
				References    []struct {
					RefType string `json:"refType"`
					TraceID string `json:"traceID"`
					SpanID  string `json:"spanID"`
				} `json:"references"`
				StartTime int64 `json:"startTime"`
				Duration  int64 `json:"duration"`
				Tags      []struct {
					Key   string `json:"key"`
					Value any    `json:"value"`
				} `json:"tags"`
				ProcessID string `json:"processID"`
			} `json:"spans"`
			Processes map[string]struct {
				ServiceName string `json:"serviceName"`
			} `json:"processes"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("decode the query API's trace: %w", err)
	}
	if len(doc.Data) == 0 {
		return nil, ErrTraceNotFound
	}
	d := doc.Data[0]
	t := &Trace{TraceID: d.TraceID, Raw: raw}
	for _, s := range d.Spans {
		span := Span{SpanID: s.SpanID, OperationName: s.OperationName, Service: d.Processes[s.ProcessID].ServiceName,
			Start: time.UnixMicro(s.StartTime), Duration: time.Duration(s.Duration) * time.Microsecond,
			Tags: map[string]any{}}
		for _, r := range s.References {
			if r.TraceID == s.TraceID {
				span.Parents = append(span.Parents, r.SpanID)
			}
		}
		for _, tag := range s.Tags {
			span.Tags[tag.Key] = tag.Value
		}
		t.Spans = append(t.Spans, span)
	}
	return t, nil
}

// Span returns the span with id, if the trace has it.
func (t *Trace) Span(id string) (Span, bool) {
	for _, s := range t.Spans {
		if s.SpanID == id {
			return s, true
		}
	}
	return Span{}, false
}

// DescendsFrom reports whether span descends from ancestor through parent references.
func (t *Trace) DescendsFrom(span, ancestor Span) bool {
	seen := map[string]bool{}
	queue := append([]string(nil), span.Parents...)
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		if id == ancestor.SpanID {
			return true
		}
		if seen[id] {
			continue
		}
		seen[id] = true
		if p, ok := t.Span(id); ok {
			queue = append(queue, p.Parents...)
		}
	}
	return false
}

// getStatus GETs url once and wants status.
func getStatus(ctx context.Context, client *http.Client, url string, want int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Stop(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != want {
		return errors.New(resp.Status)
	}
	return nil
}
