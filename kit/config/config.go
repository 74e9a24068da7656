// Package config loads an app's settings from the environment it is given
// (caarlos0/env tags on the app's own Config) and holds the settings both
// apps read: an operator configures the two as one system, so APP_PORT,
// DAPR_HOST, DAPR_HTTP_PORT, LOG_LEVEL, PPROF_ADDR and DRAIN_DELAY accept the
// same values and fail with the same words in both.
package config

import (
	"errors"
	"fmt"
	"net"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/rs/zerolog"
)

// Shared is the settings both apps read alike; each app's Config embeds it.
// APP_PORT is not here: its default differs, so each app passes it to Check.
type Shared struct {
	DaprHost     string `env:"DAPR_HOST" envDefault:"127.0.0.1"`
	DaprHTTPPort int    `env:"DAPR_HTTP_PORT" envDefault:"3500"`
	// DaprAPIToken authenticates the app to its sidecar. A secret.
	DaprAPIToken string `env:"DAPR_API_TOKEN"`
	LogLevel     string `env:"LOG_LEVEL" envDefault:"info"`
	// PprofAddr, when set (host:port, e.g. 127.0.0.1:6060), serves
	// net/http/pprof on a listener of its own. Off by default: profiles
	// reveal internals.
	PprofAddr  string        `env:"PPROF_ADDR"`
	DrainDelay time.Duration `env:"DRAIN_DELAY" envDefault:"5s"`
	// ListenHost and OpsListenHost bind APP_PORT and OPS_PORT; empty is
	// every interface.
	ListenHost    string `env:"LISTEN_HOST"`
	OpsListenHost string `env:"OPS_LISTEN_HOST"`
}

// Load parses environ (KEY=value pairs, as from os.Environ) into a T and
// has validate check it; validate starts with Shared.Check, so that the
// shared settings' errors come first and alike. Every error names the
// variable at fault, and all of them are reported at once.
func Load[T any](environ []string, validate func(T, *Checks)) (T, error) {
	vars := env.ToMap(environ)
	cfg, err := env.ParseAsWithOptions[T](env.Options{Environment: vars})
	if err != nil {
		var zero T
		return zero, nameVariables[T](err, vars)
	}
	c := &Checks{}
	validate(cfg, c)
	if len(c.errs) > 0 {
		var zero T
		return zero, errors.Join(c.errs...)
	}
	return cfg, nil
}

// LogLevels are the values LOG_LEVEL takes.
var LogLevels = []string{"debug", "info", "warn", "error"}

// Level is LOG_LEVEL as a zerolog level; Load has already rejected others.
func (c Shared) Level() zerolog.Level {
	lvl, _ := zerolog.ParseLevel(c.LogLevel)
	return lvl
}

// SidecarBaseURL is the Dapr sidecar's HTTP API root, without a trailing
// slash. DAPR_HOST may be a bare IPv6 literal (::1) or a bracketed one.
func (c Shared) SidecarBaseURL() string {
	host := strings.TrimSuffix(strings.TrimPrefix(c.DaprHost, "["), "]")
	return "http://" + net.JoinHostPort(host, strconv.Itoa(c.DaprHTTPPort))
}

// Check checks the shared settings and the app's APP_PORT.
func (c Shared) Check(ch *Checks, appPort int) {
	ch.Port("APP_PORT", appPort, 0)
	ch.Port("DAPR_HTTP_PORT", c.DaprHTTPPort, 1)
	if strings.TrimSpace(c.DaprHost) == "" || strings.ContainsAny(c.DaprHost, "/ ") {
		ch.Bad("DAPR_HOST must be a host name or IP address, got %q", c.DaprHost)
	}
	if !slices.Contains(LogLevels, c.LogLevel) {
		ch.Bad("LOG_LEVEL must be one of %s, got %q", strings.Join(LogLevels, "|"), c.LogLevel)
	}
	if _, port, err := net.SplitHostPort(c.PprofAddr); c.PprofAddr != "" && (err != nil || port == "") {
		ch.Bad("PPROF_ADDR must be host:port (for example 127.0.0.1:6060) or empty, got %q", c.PprofAddr)
	}
	ch.NotNegative("DRAIN_DELAY", c.DrainDelay)
}

// Checks collects every problem with a configuration, so that an operator
// sees them all at once, each naming its variable.
type Checks struct{ errs []error }

// Bad records a problem; format starts with the variable's name.
func (ch *Checks) Bad(format string, args ...any) {
	ch.errs = append(ch.errs, fmt.Errorf("config: "+format, args...))
}

// Port holds a TCP port to lowest..65535 (0 asks the kernel for a free one).
func (ch *Checks) Port(name string, v, lowest int) {
	if v < lowest || v > 65535 {
		ch.Bad("%s must be between %d and 65535, got %d", name, lowest, v)
	}
}

// Positive holds a duration above zero.
func (ch *Checks) Positive(name string, d time.Duration) {
	if d <= 0 {
		ch.Bad("%s must be positive, got %s", name, d)
	}
}

// NotNegative holds a duration at zero or above.
func (ch *Checks) NotNegative(name string, d time.Duration) {
	if d < 0 {
		ch.Bad("%s must not be negative, got %s", name, d)
	}
}

// nameVariables rewrites caarlos0/env parse errors, which name the Go struct
// field ("Port"), so that they name the environment variable (APP_PORT) an
// operator actually sets, and the value it had.
func nameVariables[T any](err error, vars map[string]string) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return fmt.Errorf("config: %w", err)
	}
	t := reflect.TypeFor[T]()
	errs := make([]error, 0, len(agg.Errors))
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) {
			if f, ok := t.FieldByName(pe.Name); ok {
				name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
				errs = append(errs, fmt.Errorf("config: %s has an invalid value %q: %w", name, vars[name], pe.Err))
				continue
			}
		}
		errs = append(errs, fmt.Errorf("config: %w", e))
	}
	return errors.Join(errs...)
}
