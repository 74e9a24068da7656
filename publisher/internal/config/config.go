// Package config loads the publisher's settings from the environment it is given.
package config

import (
	"strings"
	"time"

	kitconfig "github.com/taskevents/taskevents/kit/config"
)

// Load parses environ (KEY=value pairs, as from os.Environ) and validates
// the result. Every error names the variable at fault.
func Load(environ []string) (Config, error) { return kitconfig.Load(environ, Config.validate) }

// Config is every setting the publisher reads. The envDefault tags are the
// documentation of the defaults; README's table mirrors them.
type Config struct {
	// Shared is DAPR_HOST, DAPR_HTTP_PORT, DAPR_API_TOKEN, LOG_LEVEL,
	// PPROF_ADDR, DRAIN_DELAY, LISTEN_HOST and OPS_LISTEN_HOST, read as the
	// worker reads them.
	kitconfig.Shared

	// AppID only appears in error messages that tell an operator which
	// app-id to allow in a component's scopes; the Dapr injector sets APP_ID.
	AppID string `env:"APP_ID" envDefault:"task-api"`

	Port int `env:"APP_PORT" envDefault:"8000"`
	// OpsPort serves /metrics, /healthz and /readyz to Prometheus and the
	// kubelet, so scrapes never count as (or queue behind) API requests.
	OpsPort int `env:"OPS_PORT" envDefault:"8003"`

	PubSubName string `env:"PUBSUB_NAME,notEmpty" envDefault:"pubsub"`
	Topic      string `env:"TOPIC_NAME,notEmpty" envDefault:"task-events"`

	PublishTimeout      time.Duration `env:"PUBLISH_TIMEOUT" envDefault:"5s"`
	MaxTitleLength      int           `env:"MAX_TITLE_LENGTH" envDefault:"200"`
	SidecarMaxIdleConns int           `env:"SIDECAR_MAX_IDLE_CONNS" envDefault:"256"`
	ReadinessInterval   time.Duration `env:"READINESS_INTERVAL" envDefault:"2s"`
	ShutdownTimeout     time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"10s"`

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

	// IdempotencyStore names the Dapr state store component that remembers
	// Idempotency-Keys, or is "memory" for an in-process store.
	IdempotencyStore  string        `env:"IDEMPOTENCY_STORE,notEmpty" envDefault:"statestore"`
	IdempotencyKeyTTL time.Duration `env:"IDEMPOTENCY_KEY_TTL" envDefault:"24h"`
}

// IdempotencyInMemory is the IDEMPOTENCY_STORE value that keeps keys in the
// process instead of a Dapr state store.
const IdempotencyInMemory = "memory"

// maxBatch bounds PUBLISH_BATCH_MAX: a bulk request of 1,000 task events is
// some 300 KB, well inside daprd's default 4 MB body limit.
const maxBatch = 1000

// validate checks the shared settings first, as the worker does, then the
// publisher's own.
func (c Config) validate(ch *kitconfig.Checks) {
	c.Check(ch, c.Port)
	bad := ch.Bad
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
	ch.Port("OPS_PORT", c.OpsPort, 0)
	if c.OpsPort != 0 && c.OpsPort == c.Port {
		bad("OPS_PORT must differ from APP_PORT (%d): the API and /metrics are served on separate ports", c.Port)
	}
	ch.Positive("PUBLISH_TIMEOUT", c.PublishTimeout)
	if c.PublishBatchMax < 1 || c.PublishBatchMax > maxBatch {
		bad("PUBLISH_BATCH_MAX must be between 1 and %d, got %d", maxBatch, c.PublishBatchMax)
	}
	if c.PublishMaxInFlight < 1 || c.PublishMaxInFlight > c.SidecarMaxIdleConns {
		bad("PUBLISH_MAX_IN_FLIGHT must be between 1 and SIDECAR_MAX_IDLE_CONNS (%d), got %d",
			c.SidecarMaxIdleConns, c.PublishMaxInFlight)
	}
	if c.MaxTitleLength < 1 {
		bad("MAX_TITLE_LENGTH must be at least 1, got %d", c.MaxTitleLength)
	}
	if c.SidecarMaxIdleConns < 1 {
		bad("SIDECAR_MAX_IDLE_CONNS must be at least 1, got %d", c.SidecarMaxIdleConns)
	}
	ch.Positive("READINESS_INTERVAL", c.ReadinessInterval)
	ch.Positive("SHUTDOWN_TIMEOUT", c.ShutdownTimeout)
	// The store name is one path segment of the state API's URL.
	if strings.TrimSpace(c.IdempotencyStore) != c.IdempotencyStore || strings.Contains(c.IdempotencyStore, "/") {
		bad("IDEMPOTENCY_STORE must be a state store component name or %q, without \"/\" or surrounding spaces, got %q",
			IdempotencyInMemory, c.IdempotencyStore)
	}
	ch.Positive("IDEMPOTENCY_KEY_TTL", c.IdempotencyKeyTTL)
}
