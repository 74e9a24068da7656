package tracing_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/taskevents/taskevents/kit/tracing"
)

func TestParseSettings(t *testing.T) {
	const app = "taskevents-app"
	for _, tt := range []struct {
		name string
		env  []string
		want tracing.Settings // only the fields set here are compared, see below
	}{
		{"nothing set: off", nil, tracing.Settings{}},
		{"only unrelated variables: off", []string{"APP_PORT=8000", "OTEL_SERVICE_NAME=x"}, tracing.Settings{}},
		{"an endpoint turns OTLP on, /v1/traces under it",
			[]string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318"},
			tracing.Settings{Exporters: []string{"otlp"}, Endpoint: "http://collector:4318/v1/traces", Protocol: "http/protobuf"}},
		{"a base path keeps its prefix",
			[]string{"OTEL_EXPORTER_OTLP_ENDPOINT=https://collector:4318/otlp/"},
			tracing.Settings{Exporters: []string{"otlp"}, Endpoint: "https://collector:4318/otlp/v1/traces", Protocol: "http/protobuf"}},
		{"the traces endpoint is used as it is, and wins",
			[]string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://a:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://b:4318/custom"},
			tracing.Settings{Exporters: []string{"otlp"}, Endpoint: "http://b:4318/custom", Protocol: "http/protobuf"}},
		{"a traces endpoint without a path gets /",
			[]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://b:4318"},
			tracing.Settings{Exporters: []string{"otlp"}, Endpoint: "http://b:4318/", Protocol: "http/protobuf"}},
		{"otlp without an endpoint goes to localhost",
			[]string{"OTEL_TRACES_EXPORTER=otlp"},
			tracing.Settings{Exporters: []string{"otlp"}, Endpoint: "http://localhost:4318/v1/traces", Protocol: "http/protobuf"}},
		{"grpc: scheme, host and port only",
			[]string{"OTEL_EXPORTER_OTLP_PROTOCOL=grpc", "OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4317/ignored"},
			tracing.Settings{Exporters: []string{"otlp"}, Endpoint: "http://collector:4317", Protocol: "grpc"}},
		{"grpc default endpoint", []string{"OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc"},
			tracing.Settings{Exporters: []string{"otlp"}, Endpoint: "http://localhost:4317", Protocol: "grpc"}},
		{"the traces protocol wins",
			[]string{"OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/json"},
			tracing.Settings{Exporters: []string{"otlp"}, Endpoint: "http://localhost:4318/v1/traces", Protocol: "http/json"}},
		{"console", []string{"OTEL_TRACES_EXPORTER=console"},
			tracing.Settings{Exporters: []string{"console"}, Protocol: "http/protobuf", Endpoint: "http://localhost:4318/v1/traces"}},
		{"otlp and console", []string{"OTEL_TRACES_EXPORTER=otlp, console", "OTEL_EXPORTER_OTLP_ENDPOINT=http://c:4318"},
			tracing.Settings{Exporters: []string{"otlp", "console"}, Endpoint: "http://c:4318/v1/traces", Protocol: "http/protobuf"}},
		{"none wins over an endpoint", []string{"OTEL_TRACES_EXPORTER=none", "OTEL_EXPORTER_OTLP_ENDPOINT=http://c:4318"},
			tracing.Settings{Endpoint: "http://c:4318/v1/traces", Protocol: "http/protobuf"}},
		{"OTEL_SDK_DISABLED=true wins over everything",
			[]string{"OTEL_SDK_DISABLED=True", "OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_ENDPOINT=http://c:4318"},
			tracing.Settings{Endpoint: "http://c:4318/v1/traces", Protocol: "http/protobuf"}},
		{"OTEL_SDK_DISABLED=false changes nothing",
			[]string{"OTEL_SDK_DISABLED=false", "OTEL_EXPORTER_OTLP_ENDPOINT=http://c:4318"},
			tracing.Settings{Exporters: []string{"otlp"}, Endpoint: "http://c:4318/v1/traces", Protocol: "http/protobuf"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tracing.ParseSettings(tt.env, app)
			if err != nil {
				t.Fatal(err)
			}
			if got.On() != (len(tt.want.Exporters) > 0) || !reflect.DeepEqual(got.Exporters, tt.want.Exporters) {
				t.Errorf("exporters = %q (on %v), want %q", got.Exporters, got.On(), tt.want.Exporters)
			}
			if tt.want.Endpoint != "" && (got.Endpoint != tt.want.Endpoint || got.Protocol != tt.want.Protocol) {
				t.Errorf("endpoint = %s %s, want %s %s", got.Protocol, got.Endpoint, tt.want.Protocol, tt.want.Endpoint)
			}
		})
	}
}

func TestParseSettingsDetails(t *testing.T) {
	for _, tt := range []struct {
		name  string
		env   []string
		check func(t *testing.T, s tracing.Settings)
	}{
		{"defaults", nil, func(t *testing.T, s tracing.Settings) {
			if s.ServiceName != "app" || s.Sampler != "parentbased_always_on" || s.Timeout != 10*time.Second ||
				s.Gzip || s.Headers != nil || len(s.Attributes) != 0 {
				t.Errorf("defaults: %+v", s)
			}
		}},
		{"OTEL_SERVICE_NAME", []string{"OTEL_SERVICE_NAME=billing"}, func(t *testing.T, s tracing.Settings) {
			if s.ServiceName != "billing" {
				t.Errorf("service name %q", s.ServiceName)
			}
		}},
		{"service.name in the resource attributes, percent-decoded", []string{
			"OTEL_RESOURCE_ATTRIBUTES=service.name=from%20attrs, deployment.environment=prod,team=a%2Cb",
		}, func(t *testing.T, s tracing.Settings) {
			want := []attribute.KeyValue{attribute.String("deployment.environment", "prod"), attribute.String("team", "a,b")}
			if s.ServiceName != "from attrs" || !reflect.DeepEqual(s.Attributes, want) {
				t.Errorf("service %q, attributes %v", s.ServiceName, s.Attributes)
			}
		}},
		{"OTEL_SERVICE_NAME wins over service.name", []string{
			"OTEL_RESOURCE_ATTRIBUTES=service.name=a", "OTEL_SERVICE_NAME=b",
		}, func(t *testing.T, s tracing.Settings) {
			if s.ServiceName != "b" {
				t.Errorf("service name %q", s.ServiceName)
			}
		}},
		{"ratio sampler", []string{"OTEL_TRACES_SAMPLER=parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG=0.25"},
			func(t *testing.T, s tracing.Settings) {
				if s.Sampler != "parentbased_traceidratio" || s.SamplerArg != 0.25 {
					t.Errorf("sampler %s %v", s.Sampler, s.SamplerArg)
				}
			}},
		{"the argument of a sampler without a ratio is ignored", []string{"OTEL_TRACES_SAMPLER=always_on", "OTEL_TRACES_SAMPLER_ARG=x"},
			func(t *testing.T, s tracing.Settings) {
				if s.Sampler != "always_on" {
					t.Errorf("sampler %s", s.Sampler)
				}
			}},
		{"headers, timeout, compression: the traces variables win", []string{
			"OTEL_EXPORTER_OTLP_HEADERS=a=1", "OTEL_EXPORTER_OTLP_TRACES_HEADERS=api-key=s%3Dcret, x-team = blue",
			"OTEL_EXPORTER_OTLP_TIMEOUT=1000", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT=2500",
			"OTEL_EXPORTER_OTLP_COMPRESSION=gzip",
		}, func(t *testing.T, s tracing.Settings) {
			if want := map[string]string{"api-key": "s=cret", "x-team": "blue"}; !reflect.DeepEqual(s.Headers, want) {
				t.Errorf("headers %v, want %v", s.Headers, want)
			}
			if s.Timeout != 2500*time.Millisecond || !s.Gzip {
				t.Errorf("timeout %s gzip %v", s.Timeout, s.Gzip)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := tracing.ParseSettings(tt.env, "app")
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, s)
		})
	}
}

func TestParseSettingsErrors(t *testing.T) {
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
		{[]string{"OTEL_EXPORTER_OTLP_TIMEOUT=10s"}, []string{`OTEL_EXPORTER_OTLP_TIMEOUT has an invalid value "10s": want a whole number of milliseconds`}},
		{[]string{"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT=0"}, []string{`OTEL_EXPORTER_OTLP_TRACES_TIMEOUT has an invalid value "0"`}},
		{[]string{"OTEL_EXPORTER_OTLP_COMPRESSION=zstd"}, []string{`OTEL_EXPORTER_OTLP_COMPRESSION has an invalid value "zstd": want one of gzip, none`}},
		{[]string{"OTEL_RESOURCE_ATTRIBUTES=team"}, []string{`OTEL_RESOURCE_ATTRIBUTES has an invalid value "team": entry 1 is not key=value`}},
		{[]string{"OTEL_RESOURCE_ATTRIBUTES=a=%zz"}, []string{`OTEL_RESOURCE_ATTRIBUTES has an invalid value "a=%zz": the value of a is not percent-encoded`}},
		{[]string{"OTEL_EXPORTER_OTLP_CERTIFICATE=/nonexistent/ca.pem"}, []string{`OTEL_EXPORTER_OTLP_CERTIFICATE has an invalid value "/nonexistent/ca.pem": want the path of a PEM file`}},
		// Several bad values: every one is reported.
		{[]string{"OTEL_SDK_DISABLED=1", "OTEL_TRACES_SAMPLER=x", "OTEL_EXPORTER_OTLP_ENDPOINT=nope"},
			[]string{"OTEL_SDK_DISABLED", "OTEL_TRACES_SAMPLER", "OTEL_EXPORTER_OTLP_ENDPOINT"}},
	} {
		t.Run(strings.Join(tt.env, " "), func(t *testing.T) {
			_, err := tracing.ParseSettings(tt.env, "app")
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

// Headers often hold an API key: a malformed value is described, never quoted.
func TestParseSettingsHeadersErrorHidesTheValue(t *testing.T) {
	_, err := tracing.ParseSettings([]string{"OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer s3cret,broken"}, "app")
	if err == nil {
		t.Fatal("no error")
	}
	if !strings.Contains(err.Error(), "OTEL_EXPORTER_OTLP_HEADERS is malformed: entry 2 is not key=value") ||
		strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error %q: want the variable and the entry, without the value", err)
	}
}

func TestParseSettingsCertificate(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, []byte("not checked until New"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := tracing.ParseSettings([]string{"OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE=" + ca}, "app")
	if err != nil || s.Certificate != ca {
		t.Fatalf("certificate %q, %v", s.Certificate, err)
	}
}

// Only the environ given counts: the process's own OTEL_* variables do not.
func TestParseSettingsIgnoresTheProcessEnvironment(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://from-process:4318")
	t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
	t.Setenv("OTEL_SERVICE_NAME", "from-process")
	s, err := tracing.ParseSettings([]string{"APP_PORT=1"}, "app")
	if err != nil {
		t.Fatal(err)
	}
	if s.On() || s.ServiceName != "app" {
		t.Errorf("settings read the process environment: %+v", s)
	}
}
