// Package config loads the publisher's settings from the environment it is given.
package config

import (
	"errors"
	"fmt"
	"net"
	"reflect"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/rs/zerolog"
)

// Config is every setting the publisher reads. The envDefault tags are the
// documentation of the defaults; README's table mirrors them.
type Config struct {
	// AppID only appears in error messages that tell an operator which
	// app-id to allow in a component's scopes; the Dapr injector sets APP_ID.
	AppID string `env:"APP_ID" envDefault:"task-api"`

	Port       int    `env:"APP_PORT" envDefault:"8000"`
	ListenHost string `env:"LISTEN_HOST"`

	DaprHost     string `env:"DAPR_HOST" envDefault:"127.0.0.1"`
	DaprHTTPPort int    `env:"DAPR_HTTP_PORT" envDefault:"3500"`
	DaprAPIToken string `env:"DAPR_API_TOKEN"`

	PubSubName string `env:"PUBSUB_NAME,notEmpty" envDefault:"pubsub"`
	Topic      string `env:"TOPIC_NAME,notEmpty" envDefault:"task-events"`

	PublishTimeout      time.Duration `env:"PUBLISH_TIMEOUT" envDefault:"5s"`
	MaxTitleLength      int           `env:"MAX_TITLE_LENGTH" envDefault:"200"`
	SidecarMaxIdleConns int           `env:"SIDECAR_MAX_IDLE_CONNS" envDefault:"256"`
	ReadinessInterval   time.Duration `env:"READINESS_INTERVAL" envDefault:"2s"`
	DrainDelay          time.Duration `env:"DRAIN_DELAY" envDefault:"5s"`
	ShutdownTimeout     time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"10s"`
	LogLevel            string        `env:"LOG_LEVEL" envDefault:"info"`

	// PublishCoalesce sends publishes that arrive while another is in flight
	// together through daprd's bulk publish API; false publishes each alone.
	PublishCoalesce bool `env:"PUBLISH_COALESCE" envDefault:"true"`
	// PublishBatchMax caps the events of one bulk publish.
	PublishBatchMax int `env:"PUBLISH_BATCH_MAX" envDefault:"100"`
	// PublishMaxInFlight is how many publishes (single or bulk) coalescing
	// keeps in flight at once; more wait and go together in the next. One
	// makes the largest batches (least CPU per event, measured); two keeps
	// publishing when one request hangs until its attempt timeout.
	PublishMaxInFlight int `env:"PUBLISH_MAX_IN_FLIGHT" envDefault:"2"`

	// PprofAddr, when set (e.g. 127.0.0.1:6060), serves net/http/pprof on
	// its own listener. Off by default: profiles reveal internals.
	PprofAddr string `env:"PPROF_ADDR"`

	// IdempotencyStore names the Dapr state store component that remembers
	// Idempotency-Keys, or is "memory" for an in-process store.
	IdempotencyStore  string        `env:"IDEMPOTENCY_STORE,notEmpty" envDefault:"statestore"`
	IdempotencyKeyTTL time.Duration `env:"IDEMPOTENCY_KEY_TTL" envDefault:"24h"`
}

// IdempotencyInMemory is the IDEMPOTENCY_STORE value that keeps keys in the
// process instead of a Dapr state store.
const IdempotencyInMemory = "memory"

// Level is LOG_LEVEL as a zerolog level; Load has already validated it.
func (c Config) Level() zerolog.Level {
	lvl, _ := zerolog.ParseLevel(c.LogLevel)
	return lvl
}

// SidecarBaseURL is the Dapr sidecar's HTTP API root, without a trailing slash.
func (c Config) SidecarBaseURL() string {
	host := c.DaprHost
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		host = "[" + host + "]" // bare IPv6 literal
	}
	return fmt.Sprintf("http://%s:%d", host, c.DaprHTTPPort)
}

// Load parses environ (KEY=value pairs, as from os.Environ) and validates ranges.
// Every error names the variable at fault.
func Load(environ []string) (Config, error) {
	vars := env.ToMap(environ)
	cfg, err := env.ParseAsWithOptions[Config](env.Options{Environment: vars})
	if err != nil {
		return Config{}, nameVariables(err, vars)
	}
	if err := cfg.validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// maxBatch bounds PUBLISH_BATCH_MAX: a bulk request of 1,000 task events is
// some 300 KB, well inside daprd's default 4 MB body limit.
const maxBatch = 1000

var logLevels = []string{"debug", "info", "warn", "error"}

func (c Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: "+format, args...))
	}
	if c.Port < 0 || c.Port > 65535 {
		bad("APP_PORT must be between 0 and 65535, got %d", c.Port)
	}
	if c.DaprHTTPPort < 1 || c.DaprHTTPPort > 65535 {
		bad("DAPR_HTTP_PORT must be between 1 and 65535, got %d", c.DaprHTTPPort)
	}
	if strings.TrimSpace(c.DaprHost) == "" || strings.ContainsAny(c.DaprHost, "/ ") {
		bad("DAPR_HOST must be a host name or IP address, got %q", c.DaprHost)
	}
	// The pub/sub name is one path segment of the publish URL; a topic may
	// contain "/" (daprd takes the wildcard tail) but not blanks.
	if strings.TrimSpace(c.PubSubName) != c.PubSubName || strings.Contains(c.PubSubName, "/") {
		bad("PUBSUB_NAME must not contain \"/\" or surrounding spaces, got %q", c.PubSubName)
	}
	if strings.TrimSpace(c.Topic) != c.Topic {
		bad("TOPIC_NAME must not have surrounding spaces, got %q", c.Topic)
	}
	if strings.TrimSpace(c.AppID) == "" {
		bad("APP_ID must not be blank")
	}
	if c.PublishTimeout <= 0 {
		bad("PUBLISH_TIMEOUT must be positive, got %s", c.PublishTimeout)
	}
	if c.PublishBatchMax < 1 || c.PublishBatchMax > maxBatch {
		bad("PUBLISH_BATCH_MAX must be between 1 and %d, got %d", maxBatch, c.PublishBatchMax)
	}
	if c.PublishMaxInFlight < 1 || c.PublishMaxInFlight > c.SidecarMaxIdleConns {
		bad("PUBLISH_MAX_IN_FLIGHT must be between 1 and SIDECAR_MAX_IDLE_CONNS (%d), got %d",
			c.SidecarMaxIdleConns, c.PublishMaxInFlight)
	}
	if c.PprofAddr != "" {
		if _, port, err := net.SplitHostPort(c.PprofAddr); err != nil || port == "" {
			bad("PPROF_ADDR must be host:port (e.g. 127.0.0.1:6060) or empty, got %q", c.PprofAddr)
		}
	}
	if c.MaxTitleLength < 1 {
		bad("MAX_TITLE_LENGTH must be at least 1, got %d", c.MaxTitleLength)
	}
	if c.SidecarMaxIdleConns < 1 {
		bad("SIDECAR_MAX_IDLE_CONNS must be at least 1, got %d", c.SidecarMaxIdleConns)
	}
	if c.ReadinessInterval <= 0 {
		bad("READINESS_INTERVAL must be positive, got %s", c.ReadinessInterval)
	}
	if c.DrainDelay < 0 {
		bad("DRAIN_DELAY must not be negative, got %s", c.DrainDelay)
	}
	if c.ShutdownTimeout <= 0 {
		bad("SHUTDOWN_TIMEOUT must be positive, got %s", c.ShutdownTimeout)
	}
	// The store name is one path segment of the state API's URL.
	if strings.TrimSpace(c.IdempotencyStore) != c.IdempotencyStore || strings.Contains(c.IdempotencyStore, "/") {
		bad("IDEMPOTENCY_STORE must be a state store component name or %q, without \"/\" or surrounding spaces, got %q",
			IdempotencyInMemory, c.IdempotencyStore)
	}
	if c.IdempotencyKeyTTL <= 0 {
		bad("IDEMPOTENCY_KEY_TTL must be positive, got %s", c.IdempotencyKeyTTL)
	}
	valid := false
	for _, l := range logLevels {
		valid = valid || c.LogLevel == l
	}
	if !valid {
		bad("LOG_LEVEL must be one of %s, got %q", strings.Join(logLevels, "|"), c.LogLevel)
	}
	return errors.Join(errs...)
}

// nameVariables rewrites caarlos0/env parse errors, which name the Go struct
// field ("Port"), so that they name the environment variable (APP_PORT) an
// operator actually sets, and the value it had. The worker words them the
// same way (e2e holds the two together).
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
