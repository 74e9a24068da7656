// This file is kept identical in publisher/ and worker/ (e2e/samecode_test.go).

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

// An operator configures the two apps as one system: the settings both read
// (APP_PORT, DAPR_HOST, DAPR_HTTP_PORT, LOG_LEVEL, PPROF_ADDR, DRAIN_DELAY)
// accept the same values and fail with the same words, because they are
// checked here. Each app's config.go holds its Config and its own rules.

// Load parses environ (KEY=value pairs, as from os.Environ) and validates
// the result. Every error names the variable at fault.
func Load(environ []string) (Config, error) {
	vars := env.ToMap(environ)
	cfg, err := env.ParseAsWithOptions[Config](env.Options{Environment: vars})
	if err != nil {
		return Config{}, nameVariables(err, vars)
	}
	c := &checks{}
	cfg.checkShared(c)
	cfg.validate(c)
	if len(c.errs) > 0 {
		return Config{}, errors.Join(c.errs...)
	}
	return cfg, nil
}

// LogLevels are the values LOG_LEVEL takes.
var LogLevels = []string{"debug", "info", "warn", "error"}

// Level is LOG_LEVEL as a zerolog level; Load has already rejected others.
func (c Config) Level() zerolog.Level {
	lvl, err := zerolog.ParseLevel(c.LogLevel)
	if err != nil {
		return zerolog.InfoLevel
	}
	return lvl
}

// SidecarBaseURL is the Dapr sidecar's HTTP API root, without a trailing
// slash. DAPR_HOST may be a bare IPv6 literal (::1) or a bracketed one.
func (c Config) SidecarBaseURL() string {
	host := strings.TrimSuffix(strings.TrimPrefix(c.DaprHost, "["), "]")
	return "http://" + net.JoinHostPort(host, strconv.Itoa(c.DaprHTTPPort))
}

// checkShared checks the settings both apps read.
func (c Config) checkShared(ch *checks) {
	ch.port("APP_PORT", c.Port, 0)
	ch.port("DAPR_HTTP_PORT", c.DaprHTTPPort, 1)
	if strings.TrimSpace(c.DaprHost) == "" || strings.ContainsAny(c.DaprHost, "/ ") {
		ch.bad("DAPR_HOST must be a host name or IP address, got %q", c.DaprHost)
	}
	if !slices.Contains(LogLevels, c.LogLevel) {
		ch.bad("LOG_LEVEL must be one of %s, got %q", strings.Join(LogLevels, "|"), c.LogLevel)
	}
	if c.PprofAddr != "" {
		if _, port, err := net.SplitHostPort(c.PprofAddr); err != nil || port == "" {
			ch.bad("PPROF_ADDR must be host:port (for example 127.0.0.1:6060) or empty, got %q", c.PprofAddr)
		}
	}
	ch.notNegative("DRAIN_DELAY", c.DrainDelay)
}

// checks collects every problem with a configuration, so that an operator
// sees them all at once, each naming its variable.
type checks struct{ errs []error }

func (ch *checks) bad(format string, args ...any) {
	ch.errs = append(ch.errs, fmt.Errorf("config: "+format, args...))
}

// port holds a TCP port to lowest..65535 (0 asks the kernel for a free one).
func (ch *checks) port(name string, v, lowest int) {
	if v < lowest || v > 65535 {
		ch.bad("%s must be between %d and 65535, got %d", name, lowest, v)
	}
}

func (ch *checks) positive(name string, d time.Duration) {
	if d <= 0 {
		ch.bad("%s must be positive, got %s", name, d)
	}
}

func (ch *checks) notNegative(name string, d time.Duration) {
	if d < 0 {
		ch.bad("%s must not be negative, got %s", name, d)
	}
}

// nameVariables rewrites caarlos0/env parse errors, which name the Go struct
// field ("Port"), so that they name the environment variable (APP_PORT) an
// operator actually sets, and the value it had.
func nameVariables(err error, vars map[string]string) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return fmt.Errorf("config: %w", err)
	}
	t := reflect.TypeFor[Config]()
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
