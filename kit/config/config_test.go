package config

import (
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// app is what each app's Config does with the shared settings.
type app struct {
	Shared
	Port int `env:"APP_PORT" envDefault:"8000"`
}

func load(environ []string) (app, error) {
	return Load(environ, func(c app, ch *Checks) { c.Check(ch, c.Port) })
}

// TestSharedErrors holds the messages of the settings both apps read; e2e
// compares the two binaries' output.
func TestSharedErrors(t *testing.T) {
	for _, tt := range []struct{ env, want string }{
		{"APP_PORT=abc", `config: APP_PORT has an invalid value "abc": strconv.ParseInt: parsing "abc": invalid syntax`},
		{"APP_PORT=70000", "config: APP_PORT must be between 0 and 65535, got 70000"},
		{"APP_PORT=-1", "config: APP_PORT must be between 0 and 65535, got -1"},
		{"DAPR_HTTP_PORT=0", "config: DAPR_HTTP_PORT must be between 1 and 65535, got 0"},
		{"DAPR_HOST=http://x", `config: DAPR_HOST must be a host name or IP address, got "http://x"`},
		{"DAPR_HOST= ", `config: DAPR_HOST must be a host name or IP address, got " "`},
		{"LOG_LEVEL=trace", `config: LOG_LEVEL must be one of debug|info|warn|error, got "trace"`},
		{"LOG_LEVEL=INFO", `config: LOG_LEVEL must be one of debug|info|warn|error, got "INFO"`},
		{"PPROF_ADDR=6060", `config: PPROF_ADDR must be host:port (for example 127.0.0.1:6060) or empty, got "6060"`},
		{"PPROF_ADDR=localhost:", `config: PPROF_ADDR must be host:port (for example 127.0.0.1:6060) or empty, got "localhost:"`},
		{"DRAIN_DELAY=-1s", "config: DRAIN_DELAY must not be negative, got -1s"},
		{"DRAIN_DELAY=soon", `config: DRAIN_DELAY has an invalid value "soon": unable to parse duration: time: invalid duration "soon"`},
	} {
		t.Run(tt.env, func(t *testing.T) {
			_, err := load([]string{tt.env})
			if err == nil || err.Error() != tt.want {
				t.Errorf("load(%s) = %v\nwant %s", tt.env, err, tt.want)
			}
		})
	}
}

func TestSharedErrorsAllAtOnce(t *testing.T) {
	_, err := load([]string{"APP_PORT=70000", "LOG_LEVEL=loud", "DRAIN_DELAY=-1s"})
	if err == nil {
		t.Fatal("load accepted three bad values")
	}
	for _, name := range []string{"APP_PORT", "LOG_LEVEL", "DRAIN_DELAY"} {
		if !strings.Contains(err.Error(), "config: "+name+" ") {
			t.Errorf("the error does not name %s: %v", name, err)
		}
	}
}

func TestLevel(t *testing.T) {
	want := map[string]zerolog.Level{"debug": zerolog.DebugLevel, "info": zerolog.InfoLevel,
		"warn": zerolog.WarnLevel, "error": zerolog.ErrorLevel}
	if len(want) != len(LogLevels) {
		t.Fatalf("LogLevels = %v, want the four of %v", LogLevels, want)
	}
	for _, l := range LogLevels {
		cfg, err := load([]string{"LOG_LEVEL=" + l})
		if err != nil {
			t.Fatalf("LOG_LEVEL=%s: %v", l, err)
		}
		if cfg.Level() != want[l] {
			t.Errorf("LOG_LEVEL=%s: Level() = %v, want %v", l, cfg.Level(), want[l])
		}
	}
}

func TestSidecarBaseURL(t *testing.T) {
	for _, tt := range []struct{ env, want string }{
		{"DAPR_HOST=127.0.0.1", "http://127.0.0.1:3500"},
		{"DAPR_HOST=localhost", "http://localhost:3500"},
		{"DAPR_HOST=::1", "http://[::1]:3500"},
		{"DAPR_HOST=[::1]", "http://[::1]:3500"},
		{"DAPR_HOST=daprd.local", "http://daprd.local:3500"},
	} {
		cfg, err := load([]string{tt.env})
		if err != nil {
			t.Fatalf("%s: %v", tt.env, err)
		}
		if got := cfg.SidecarBaseURL(); got != tt.want {
			t.Errorf("%s: SidecarBaseURL() = %q, want %q", tt.env, got, tt.want)
		}
	}
}
