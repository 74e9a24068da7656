package harness

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestLocalTracingConfig(t *testing.T) {
	committed, err := os.ReadFile(filepath.Join("..", "..", TracingConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		in       string
		otlpHTTP string
		want     map[string]any // spec.tracing
		wantErr  bool
	}{
		{name: "the committed file, to a local Jaeger", in: string(committed), otlpHTTP: "127.0.0.1:4318",
			want: map[string]any{"samplingRate": "1",
				"otel": map[string]any{"endpointAddress": "127.0.0.1:4318", "isSecure": false, "protocol": "http"}}},
		{name: "the committed file, no exporter", in: string(committed),
			want: map[string]any{"samplingRate": "1"}},
		{name: "sampling forced to 1, zipkin replaced, other keys kept", otlpHTTP: "127.0.0.1:1", in: `apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: x
spec:
  tracing:
    samplingRate: "0.01"
    stdout: true
    zipkin:
      endpointAddress: http://zipkin:9411/api/v2/spans
`, want: map[string]any{"samplingRate": "1", "stdout": true,
			"otel": map[string]any{"endpointAddress": "127.0.0.1:1", "isSecure": false, "protocol": "http"}}},
		{name: "no samplingRate gets one", in: "kind: Configuration\nspec:\n  tracing:\n    stdout: false\n",
			want: map[string]any{"samplingRate": "1", "stdout": false}},
		{name: "not a Configuration", in: "kind: Component\nspec:\n  tracing: {}\n", wantErr: true},
		{name: "no tracing", in: "kind: Configuration\nspec:\n  metric:\n    enabled: true\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := localTracingConfig([]byte(tt.in), tt.otlpHTTP)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("want an error, got:\n%s", out)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var doc struct {
				Spec struct {
					Tracing map[string]any `yaml:"tracing"`
				} `yaml:"spec"`
			}
			if err := yaml.Unmarshal(out, &doc); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(doc.Spec.Tracing, tt.want) {
				t.Errorf("spec.tracing = %v, want %v\n%s", doc.Spec.Tracing, tt.want, out)
			}
		})
	}
}

// A trace as Jaeger v2's /api/traces/<id> answers, shortened: a root, a child in another
// process, a grandchild, a span pointing outside the trace, and an unrelated span.
const queryAnswer = `{"data":[{"traceID":"t1","spans":[
 {"traceID":"t1","spanID":"a","operationName":"POST /tasks","references":[{"refType":"CHILD_OF","traceID":"t1","spanID":"client"}],
  "startTime":1700000000000000,"duration":1500,"tags":[{"key":"span.kind","type":"string","value":"server"}],"processID":"p1"},
 {"traceID":"t1","spanID":"b","operationName":"/v1.0/publish/pubsub/task-events","references":[{"refType":"CHILD_OF","traceID":"t1","spanID":"a"}],
  "startTime":1700000000000100,"duration":700,"tags":[],"processID":"p2"},
 {"traceID":"t1","spanID":"c","operationName":"pubsub/task-events","references":[{"refType":"FOLLOWS_FROM","traceID":"t1","spanID":"b"},{"refType":"CHILD_OF","traceID":"other","spanID":"x"}],
  "startTime":1700000000000900,"duration":2000,"tags":[],"processID":"p2"},
 {"traceID":"t1","spanID":"d","operationName":"stray","references":[],"startTime":1700000000000000,"duration":1,"processID":"p1"}
],"processes":{"p1":{"serviceName":"taskevents-publisher","tags":[{"key":"host.name","value":"vm"}]},"p2":{"serviceName":"task-api"}}}],"errors":null}`

func TestParseTrace(t *testing.T) {
	tr, err := parseTrace([]byte(queryAnswer))
	if err != nil {
		t.Fatal(err)
	}
	if tr.TraceID != "t1" || len(tr.Spans) != 4 {
		t.Fatalf("trace %q with %d spans, want t1 with 4", tr.TraceID, len(tr.Spans))
	}
	a, _ := tr.Span("a")
	b, _ := tr.Span("b")
	c, _ := tr.Span("c")
	d, _ := tr.Span("d")
	if a.Service != "taskevents-publisher" || a.OperationName != "POST /tasks" || a.Tags["span.kind"] != "server" ||
		!reflect.DeepEqual(a.Parents, []string{"client"}) {
		t.Errorf("span a = %+v", a)
	}
	if want := time.UnixMicro(1700000000000000); !a.Start.Equal(want) || a.Duration != 1500*time.Microsecond ||
		!a.End().Equal(want.Add(1500*time.Microsecond)) {
		t.Errorf("span a: start %s duration %s end %s", a.Start, a.Duration, a.End())
	}
	if !reflect.DeepEqual(c.Parents, []string{"b"}) {
		t.Errorf("span c parents %v, want [b] (a reference into another trace is not a parent)", c.Parents)
	}
	for _, tt := range []struct {
		span, ancestor Span
		want           bool
	}{{c, a, true}, {c, b, true}, {b, a, true}, {a, c, false}, {d, a, false}, {c, d, false}, {a, a, false}} {
		if got := tr.DescendsFrom(tt.span, tt.ancestor); got != tt.want {
			t.Errorf("DescendsFrom(%s, %s) = %v, want %v", tt.span.SpanID, tt.ancestor.SpanID, got, tt.want)
		}
	}
	if _, err := parseTrace([]byte(`{"data":[],"errors":null}`)); !errors.Is(err, ErrTraceNotFound) {
		t.Errorf("empty data: %v, want ErrTraceNotFound", err)
	}
	if _, err := parseTrace([]byte(`{"data":`)); err == nil {
		t.Error("truncated JSON: no error")
	}
}
