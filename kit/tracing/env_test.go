package tracing

import (
	"reflect"
	"strings"
	"testing"
)

// Whether tracing is on, which exporters, which OTLP protocol: decided from
// environ. Where the spans then go is the SDK's part (TestOTLPHTTPPaths).
func TestParse(t *testing.T) {
	for _, tt := range []struct {
		name      string
		env       []string
		exporters []string
		protocol  string
	}{
		{"nothing set: off", nil, nil, "http/protobuf"},
		{"only unrelated variables: off", []string{"APP_PORT=8000", "OTEL_SERVICE_NAME=x"}, nil, "http/protobuf"},
		{"an endpoint turns OTLP on", []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318"}, []string{"otlp"}, "http/protobuf"},
		{"so does a traces endpoint", []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://b:4318"}, []string{"otlp"}, "http/protobuf"},
		{"otlp without an endpoint", []string{"OTEL_TRACES_EXPORTER=otlp"}, []string{"otlp"}, "http/protobuf"},
		{"grpc", []string{"OTEL_EXPORTER_OTLP_PROTOCOL=grpc", "OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4317/ignored"},
			[]string{"otlp"}, "grpc"},
		{"the traces protocol wins",
			[]string{"OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/json"},
			[]string{"otlp"}, "http/json"},
		{"console", []string{"OTEL_TRACES_EXPORTER=console"}, []string{"console"}, "http/protobuf"},
		{"otlp and console", []string{"OTEL_TRACES_EXPORTER=otlp, console", "OTEL_EXPORTER_OTLP_ENDPOINT=http://c:4318"},
			[]string{"otlp", "console"}, "http/protobuf"},
		{"none wins over an endpoint", []string{"OTEL_TRACES_EXPORTER=none", "OTEL_EXPORTER_OTLP_ENDPOINT=http://c:4318"}, nil, "http/protobuf"},
		{"OTEL_SDK_DISABLED=true wins over everything",
			[]string{"OTEL_SDK_DISABLED=True", "OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_ENDPOINT=http://c:4318"}, nil, "http/protobuf"},
		{"OTEL_SDK_DISABLED=false changes nothing",
			[]string{"OTEL_SDK_DISABLED=false", "OTEL_EXPORTER_OTLP_ENDPOINT=http://c:4318"}, []string{"otlp"}, "http/protobuf"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := parse(tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(s.exporters, tt.exporters) || s.protocol != tt.protocol {
				t.Errorf("exporters %q, protocol %s; want %q, %s", s.exporters, s.protocol, tt.exporters, tt.protocol)
			}
		})
	}
}

func TestParseSampler(t *testing.T) {
	for env, want := range map[string]string{"": "parentbased_always_on",
		"OTEL_TRACES_SAMPLER=parentbased_traceidratio": "parentbased_traceidratio"} {
		if s, err := parse([]string{env, "OTEL_TRACES_SAMPLER_ARG=0.25"}); err != nil || s.sampler != want {
			t.Errorf("%s: sampler %q (%v), want %s", env, s.sampler, err, want)
		}
	}
	// The argument of a sampler without a ratio is not read.
	if _, err := parse([]string{"OTEL_TRACES_SAMPLER=always_on", "OTEL_TRACES_SAMPLER_ARG=x"}); err != nil {
		t.Error(err)
	}
}

// The values the SDK would silently replace by a default are refused, each
// naming its variable, all at once.
func TestParseErrors(t *testing.T) {
	for _, tt := range []struct {
		env  []string
		want []string // each must be in the error
	}{
		{[]string{"OTEL_SDK_DISABLED=yes"}, []string{`config: OTEL_SDK_DISABLED has an invalid value "yes": want true or false`}},
		{[]string{"OTEL_TRACES_EXPORTER=zipkin"}, []string{`OTEL_TRACES_EXPORTER has an invalid value "zipkin": want otlp, console`}},
		{[]string{"OTEL_TRACES_EXPORTER=none,otlp"}, []string{`OTEL_TRACES_EXPORTER has an invalid value "none,otlp": none cannot be combined`}},
		{[]string{"OTEL_TRACES_SAMPLER=jaeger_remote"}, []string{`OTEL_TRACES_SAMPLER has an invalid value "jaeger_remote": want one of always_on`}},
		{[]string{"OTEL_TRACES_SAMPLER=traceidratio", "OTEL_TRACES_SAMPLER_ARG=1.5"},
			[]string{`OTEL_TRACES_SAMPLER_ARG has an invalid value "1.5": want a sampling ratio between 0 and 1`}},
		{[]string{"OTEL_TRACES_SAMPLER=parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG=half"},
			[]string{`OTEL_TRACES_SAMPLER_ARG has an invalid value "half"`}},
		{[]string{"OTEL_EXPORTER_OTLP_PROTOCOL=thrift"}, []string{`OTEL_EXPORTER_OTLP_PROTOCOL has an invalid value "thrift": want one of http/protobuf, http/json, grpc`}},
		{[]string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=HTTP"}, []string{`OTEL_EXPORTER_OTLP_TRACES_PROTOCOL has an invalid value "HTTP"`}},
		{[]string{"OTEL_EXPORTER_OTLP_ENDPOINT=collector:4318"},
			[]string{`OTEL_EXPORTER_OTLP_ENDPOINT has an invalid value "collector:4318": want an http:// or https:// URL such as http://otel-collector:4318`}},
		{[]string{"OTEL_EXPORTER_OTLP_PROTOCOL=grpc", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=ftp://c"},
			[]string{`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT has an invalid value "ftp://c": want an http:// or https:// URL such as http://otel-collector:4317`}},
		// Several bad values: every one is reported.
		{[]string{"OTEL_SDK_DISABLED=1", "OTEL_TRACES_SAMPLER=x", "OTEL_EXPORTER_OTLP_ENDPOINT=nope"},
			[]string{"OTEL_SDK_DISABLED", "OTEL_TRACES_SAMPLER", "OTEL_EXPORTER_OTLP_ENDPOINT"}},
	} {
		t.Run(strings.Join(tt.env, " "), func(t *testing.T) {
			_, err := parse(tt.env)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

// Headers often carry a token: a malformed entry is named, its value never shown.
func TestParseHeadersErrorHidesTheValue(t *testing.T) {
	for _, env := range [][]string{
		{"OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer s3cret,broken"},
		{"OTEL_EXPORTER_OTLP_HEADERS=a=b", "OTEL_EXPORTER_OTLP_TRACES_HEADERS=authorization=Bearer s3cret,broken"},
	} {
		_, err := parse(env)
		name, _, _ := strings.Cut(env[len(env)-1], "=")
		if err == nil || !strings.Contains(err.Error(), name+" is malformed: entry 2 is not key=value") ||
			strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%v: error %v: want the variable and the entry, without the value", env, err)
		}
	}
	if _, err := parse([]string{"OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20x, api-key=y,"}); err != nil {
		t.Errorf("well-formed headers refused: %v", err)
	}
}

// Only the environ given decides whether tracing is on: the process's own
// OTEL_* variables do not.
func TestParseIgnoresTheProcessEnvironment(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://from-process:4318")
	t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
	s, err := parse([]string{"APP_PORT=1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.exporters) != 0 {
		t.Errorf("settings read the process environment: %+v", s)
	}
}
