// Package config loads the worker's settings from the environment it is given.
package config

import (
	"time"

	kitconfig "github.com/taskevents/taskevents/kit/config"
)

// Load parses environ (KEY=value pairs, as from os.Environ) and validates
// the result. Every error names the variable at fault.
func Load(environ []string) (Config, error) { return kitconfig.Load(environ, Config.validate) }

// Config is every setting of the worker; the tags are the documentation.
type Config struct {
	// Shared is DAPR_HOST, DAPR_HTTP_PORT, DAPR_API_TOKEN, LOG_LEVEL,
	// PPROF_ADDR, DRAIN_DELAY, LISTEN_HOST and OPS_LISTEN_HOST, read as the
	// publisher reads them.
	kitconfig.Shared

	// Port serves the event routes (and dead-letter admin): only the pod's
	// own sidecar should reach it, so the chart binds it to loopback.
	Port int `env:"APP_PORT" envDefault:"8001"`
	// OpsPort serves /healthz, /readyz and /metrics to the kubelet and
	// Prometheus.
	OpsPort int `env:"OPS_PORT" envDefault:"8002"`

	// APIToken, when set, must arrive as the dapr-api-token header on /events/*.
	// It is a secret: never log it.
	APIToken string `env:"APP_API_TOKEN"`

	MaxEventBytes int64 `env:"MAX_EVENT_BYTES" envDefault:"1048576"`
	// MaxBatchBytes caps a bulk delivery's body (subscriptions/bulk): a
	// batch of 100 task events is about 100 KB; each event in it is still
	// held to MAX_EVENT_BYTES.
	MaxBatchBytes int64 `env:"MAX_BATCH_BYTES" envDefault:"4194304"`
	// BulkConcurrency is how many entries of one bulk delivery are handled
	// at once. daprd sends a subscription's next batch only once this one is
	// answered, and each entry waits on three state store round trips, so
	// running entries together is what makes batches pay. Measured on a
	// Redis backlog, bulk against single delivery: 1.14x at 16, 1.26x at 48,
	// 1.02x at 100 (more state calls at once than daprd serves well).
	BulkConcurrency int `env:"BULK_CONCURRENCY" envDefault:"48"`
	// DedupeStore is the Dapr state store component that keeps dedupe
	// records, handled tasks and dead letters, or "memory" to keep dedupe
	// records in this process (lost on restart) and only log dead letters.
	DedupeStore      string        `env:"DEDUPE_STORE" envDefault:"statestore"`
	DedupeLease      time.Duration `env:"DEDUPE_LEASE" envDefault:"15s"`
	DedupeMaxEntries int           `env:"DEDUPE_MAX_ENTRIES" envDefault:"100000"`
	DedupeTTL        time.Duration `env:"DEDUPE_TTL" envDefault:"24h"`
	// HandlerTimeout stays below the Resiliency policy's delivery timeout
	// (components/resiliency.yaml, 5s): past that daprd stops waiting and
	// redelivers while the handler still runs.
	HandlerTimeout time.Duration `env:"HANDLER_TIMEOUT" envDefault:"4s"`

	FaultRetryRate  float64       `env:"FAULT_RETRY_RATE" envDefault:"0"`
	FaultRetryFirst int           `env:"FAULT_RETRY_FIRST" envDefault:"0"`
	FaultDelay      time.Duration `env:"FAULT_DELAY" envDefault:"0s"`
	FaultDropTitle  string        `env:"FAULT_DROP_TITLE"`

	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"15s"`
}

// UsesStateStore reports whether dedupe records and dead letters live in a
// Dapr state store (DEDUPE_STORE is a component name, not "memory").
func (c Config) UsesStateStore() bool { return c.DedupeStore != MemoryStore }

// MemoryStore is the DEDUPE_STORE value that keeps the ledger in-process.
const MemoryStore = "memory"

// validate checks the shared settings first, as the publisher does, then
// the worker's own.
func (c Config) validate(ch *kitconfig.Checks) {
	c.Check(ch, c.Port)
	bad := ch.Bad
	ch.Port("OPS_PORT", c.OpsPort, 0)
	if c.OpsPort != 0 && c.OpsPort == c.Port {
		bad("OPS_PORT must differ from APP_PORT (%d): events and probes are served on separate ports", c.Port)
	}
	// A claim must outlive a live handler, or a redelivery could claim the
	// event while the first delivery is still handling it.
	if c.UsesStateStore() && c.DedupeLease < 2*c.HandlerTimeout {
		bad("DEDUPE_LEASE (%s) must be at least twice HANDLER_TIMEOUT (%s)", c.DedupeLease, c.HandlerTimeout)
	}
	if c.MaxEventBytes <= 0 {
		bad("MAX_EVENT_BYTES must be positive, got %d", c.MaxEventBytes)
	}
	if c.MaxBatchBytes <= 0 {
		bad("MAX_BATCH_BYTES must be positive, got %d", c.MaxBatchBytes)
	}
	if c.BulkConcurrency < 1 {
		bad("BULK_CONCURRENCY must be at least 1, got %d", c.BulkConcurrency)
	}
	if c.DedupeMaxEntries <= 0 {
		bad("DEDUPE_MAX_ENTRIES must be positive, got %d", c.DedupeMaxEntries)
	}
	ch.Positive("DEDUPE_TTL", c.DedupeTTL)
	ch.Positive("HANDLER_TIMEOUT", c.HandlerTimeout)
	// The negated form also rejects NaN.
	if !(c.FaultRetryRate >= 0 && c.FaultRetryRate <= 1) {
		bad("FAULT_RETRY_RATE must be between 0 and 1, got %v", c.FaultRetryRate)
	}
	if c.FaultRetryFirst < 0 {
		bad("FAULT_RETRY_FIRST must not be negative, got %d", c.FaultRetryFirst)
	}
	ch.NotNegative("FAULT_DELAY", c.FaultDelay)
	// In-flight handlers must be able to finish inside the shutdown budget,
	// otherwise a rollout turns every slow delivery into a redelivery.
	if c.ShutdownTimeout <= c.HandlerTimeout {
		bad("SHUTDOWN_TIMEOUT (%s) must be greater than HANDLER_TIMEOUT (%s)", c.ShutdownTimeout, c.HandlerTimeout)
	}
}
