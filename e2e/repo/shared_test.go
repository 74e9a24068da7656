package repo

// The two apps are separate modules, but an operator configures them as one system: a
// setting both read must accept the same values and fail with the same message.

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/taskevents/taskevents/e2e/internal/suite"
)

func TestAppsShareConfigBehaviour(t *testing.T) {
	for _, c := range []struct {
		name string
		env  []string
		want string // in both apps' message
	}{
		{"log-level-trace", []string{"LOG_LEVEL=trace"}, `LOG_LEVEL must be one of debug|info|warn|error, got "trace"`},
		{"log-level-upper", []string{"LOG_LEVEL=INFO"}, `LOG_LEVEL must be one of debug|info|warn|error, got "INFO"`},
		{"app-port-text", []string{"APP_PORT=abc"}, `APP_PORT has an invalid value "abc"`},
		{"app-port-range", []string{"APP_PORT=70000"}, "APP_PORT must be between 0 and 65535, got 70000"},
		{"dapr-port-range", []string{"DAPR_HTTP_PORT=0"}, "DAPR_HTTP_PORT must be between 1 and 65535, got 0"},
		{"dapr-host", []string{"DAPR_HOST=http://daprd"}, `DAPR_HOST must be a host name or IP address, got "http://daprd"`},
		{"pprof-addr", []string{"PPROF_ADDR=6060"}, `PPROF_ADDR must be host:port (for example 127.0.0.1:6060) or empty, got "6060"`},
		{"drain-delay-negative", []string{"DRAIN_DELAY=-1s"}, "DRAIN_DELAY must not be negative, got -1s"},
		{"drain-delay-text", []string{"DRAIN_DELAY=soon"}, `DRAIN_DELAY has an invalid value "soon"`},
		{"otel-sampler", []string{"OTEL_TRACES_SAMPLER=sometimes"}, `OTEL_TRACES_SAMPLER has an invalid value "sometimes"`},
		{"otel-sampler-arg", []string{"OTEL_TRACES_SAMPLER=traceidratio", "OTEL_TRACES_SAMPLER_ARG=2"}, `OTEL_TRACES_SAMPLER_ARG has an invalid value "2"`},
		{"otel-protocol", []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318", "OTEL_EXPORTER_OTLP_PROTOCOL=carrier-pigeon"}, `OTEL_EXPORTER_OTLP_PROTOCOL has an invalid value "carrier-pigeon"`},
		{"otel-exporter", []string{"OTEL_TRACES_EXPORTER=zipkin"}, `OTEL_TRACES_EXPORTER has an invalid value "zipkin"`},
		{"otel-disabled", []string{"OTEL_SDK_DISABLED=maybe"}, `OTEL_SDK_DISABLED has an invalid value "maybe"`},
		{"all-at-once", []string{"APP_PORT=70000", "LOG_LEVEL=loud"}, "APP_PORT must be between 0 and 65535, got 70000\nconfig: LOG_LEVEL must be one of"},
	} {
		t.Run(c.name, func(t *testing.T) {
			msgs := map[string]string{}
			for app, bin := range map[string]string{"publisher": suite.Bins.Publisher, "worker": suite.Bins.Worker} {
				cmd := exec.Command(bin)
				cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, c.env...)
				out, err := cmd.CombinedOutput()
				var exit *exec.ExitError
				if !errors.As(err, &exit) || exit.ExitCode() != 1 {
					t.Fatalf("%s with %v: %v, want exit status 1\n%s", app, c.env, err, out)
				}
				msg := strings.TrimSpace(string(out))
				if !strings.HasPrefix(msg, app+": config: ") || !strings.Contains(msg, c.want) {
					t.Errorf("%s with %v said %q, want \"%s: config: …%s…\"", app, c.env, msg, app, c.want)
				}
				msgs[app] = strings.TrimPrefix(msg, app+": ")
			}
			if msgs["publisher"] != msgs["worker"] {
				t.Errorf("the apps disagree on %v:\npublisher: %s\nworker:    %s", c.env, msgs["publisher"], msgs["worker"])
			}
		})
	}
}
