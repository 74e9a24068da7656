package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	kitconfig "github.com/taskevents/taskevents/kit/config"
	"github.com/taskevents/taskevents/publisher/internal/config"
)

func TestLoadDefaults(t *testing.T) {
	cfg, err := config.Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := config.Config{
		Shared: kitconfig.Shared{DaprHost: "127.0.0.1", DaprHTTPPort: 3500, DrainDelay: 5 * time.Second, LogLevel: "info"},

		AppID: "task-api", Port: 8000, OpsPort: 8003,
		PubSubName: "pubsub", Topic: "task-events", PublishTimeout: 5 * time.Second, MaxTitleLength: 200,
		SidecarMaxIdleConns: 256, ReadinessInterval: 2 * time.Second, ShutdownTimeout: 10 * time.Second,
		IdempotencyStore: "statestore", IdempotencyKeyTTL: 24 * time.Hour,
		PublishCoalesce: true, PublishBatchMax: 100, PublishMaxInFlight: 2,
	}
	if cfg != want {
		t.Errorf("defaults = %+v\nwant       %+v", cfg, want)
	}
	if cfg.Level() != zerolog.InfoLevel || cfg.SidecarBaseURL() != "http://127.0.0.1:3500" {
		t.Errorf("Level, SidecarBaseURL = %v, %q", cfg.Level(), cfg.SidecarBaseURL())
	}
}

func TestLoadOverrides(t *testing.T) {
	cfg, err := config.Load([]string{
		"APP_PORT=0", "LISTEN_HOST=127.0.0.1", "OPS_PORT=9003", "OPS_LISTEN_HOST=0.0.0.0", "DAPR_HOST=::1", "DAPR_HTTP_PORT=3501", "DAPR_API_TOKEN=t",
		"PUBSUB_NAME=kafka-pubsub", "TOPIC_NAME=tasks", "PUBLISH_TIMEOUT=2s", "MAX_TITLE_LENGTH=10",
		"SIDECAR_MAX_IDLE_CONNS=8", "READINESS_INTERVAL=100ms", "DRAIN_DELAY=0s", "SHUTDOWN_TIMEOUT=1s", "LOG_LEVEL=debug",
		"IDEMPOTENCY_STORE=memory", "IDEMPOTENCY_KEY_TTL=90m",
		"PUBLISH_COALESCE=false", "PUBLISH_BATCH_MAX=7", "PUBLISH_MAX_IN_FLIGHT=2", "PPROF_ADDR=127.0.0.1:6060",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Port != 0 || cfg.OpsPort != 9003 || cfg.OpsListenHost != "0.0.0.0" || cfg.SidecarBaseURL() != "http://[::1]:3501" || cfg.DaprAPIToken != "t" ||
		cfg.PubSubName != "kafka-pubsub" || cfg.Topic != "tasks" || cfg.PublishTimeout != 2*time.Second ||
		cfg.MaxTitleLength != 10 || cfg.SidecarMaxIdleConns != 8 || cfg.ReadinessInterval != 100*time.Millisecond ||
		cfg.DrainDelay != 0 || cfg.ShutdownTimeout != time.Second || cfg.Level() != zerolog.DebugLevel ||
		cfg.IdempotencyStore != config.IdempotencyInMemory || cfg.IdempotencyKeyTTL != 90*time.Minute ||
		cfg.PublishCoalesce || cfg.PublishBatchMax != 7 || cfg.PublishMaxInFlight != 2 || cfg.PprofAddr != "127.0.0.1:6060" {
		t.Errorf("overrides not applied: %+v", cfg)
	}
}

// Both ports may be 0 (each gets a free port of its own); only equal fixed
// ports collide.
func TestOpsPortMayBeZero(t *testing.T) {
	for _, env := range [][]string{{"APP_PORT=0", "OPS_PORT=0"}, {"OPS_PORT=0"}, {"APP_PORT=9000", "OPS_PORT=9001"}} {
		if _, err := config.Load(env); err != nil {
			t.Errorf("Load(%v) = %v", env, err)
		}
	}
	if _, err := config.Load([]string{"APP_PORT=9000", "OPS_PORT=9000"}); err == nil ||
		!strings.Contains(err.Error(), "OPS_PORT must differ from APP_PORT (9000)") {
		t.Errorf("equal ports: %v", err)
	}
}

func TestLoadErrorsNameTheVariable(t *testing.T) {
	for _, tt := range []struct{ env, name string }{
		{"APP_PORT=abc", "APP_PORT"},
		{"APP_PORT=70000", "APP_PORT"},
		{"APP_PORT=-1", "APP_PORT"},
		{"DAPR_HTTP_PORT=0", "DAPR_HTTP_PORT"},
		{"OPS_PORT=8000", "OPS_PORT must differ from APP_PORT (8000)"},
		{"OPS_PORT=65536", "OPS_PORT must be between"},
		{"OPS_PORT=-1", "OPS_PORT"},
		{"OPS_PORT=metrics", "OPS_PORT"},
		{"DAPR_HOST=http://x", "DAPR_HOST"},
		{"PUBSUB_NAME=a/b", "PUBSUB_NAME"},
		{"TOPIC_NAME= t", "TOPIC_NAME"},
		{"PUBLISH_TIMEOUT=5", "PUBLISH_TIMEOUT"},
		{"PUBLISH_TIMEOUT=0s", "PUBLISH_TIMEOUT"},
		{"MAX_TITLE_LENGTH=0", "MAX_TITLE_LENGTH"},
		{"MAX_TITLE_LENGTH=many", "MAX_TITLE_LENGTH"},
		{"SIDECAR_MAX_IDLE_CONNS=0", "SIDECAR_MAX_IDLE_CONNS"},
		{"READINESS_INTERVAL=0s", "READINESS_INTERVAL"},
		{"DRAIN_DELAY=-1s", "DRAIN_DELAY"},
		{"SHUTDOWN_TIMEOUT=soon", "SHUTDOWN_TIMEOUT"},
		{"LOG_LEVEL=verbose", "LOG_LEVEL"},
		{"LOG_LEVEL=trace", "LOG_LEVEL"},
		{"IDEMPOTENCY_STORE=state/store", "IDEMPOTENCY_STORE"},
		{"IDEMPOTENCY_STORE= statestore", "IDEMPOTENCY_STORE"},
		{"IDEMPOTENCY_KEY_TTL=0s", "IDEMPOTENCY_KEY_TTL"},
		{"IDEMPOTENCY_KEY_TTL=-1h", "IDEMPOTENCY_KEY_TTL"},
		{"IDEMPOTENCY_KEY_TTL=1day", "IDEMPOTENCY_KEY_TTL"},
		{"PUBLISH_COALESCE=maybe", "PUBLISH_COALESCE"},
		{"PUBLISH_BATCH_MAX=0", "PUBLISH_BATCH_MAX"},
		{"PUBLISH_BATCH_MAX=1001", "PUBLISH_BATCH_MAX"},
		{"PUBLISH_BATCH_MAX=lots", "PUBLISH_BATCH_MAX"},
		{"PUBLISH_MAX_IN_FLIGHT=0", "PUBLISH_MAX_IN_FLIGHT"},
		{"PUBLISH_MAX_IN_FLIGHT=257", "PUBLISH_MAX_IN_FLIGHT"},
		{"PPROF_ADDR=6060", "PPROF_ADDR"},
		{"PPROF_ADDR=localhost:", "PPROF_ADDR"},
	} {
		t.Run(tt.env, func(t *testing.T) {
			_, err := config.Load([]string{tt.env})
			if err == nil || !strings.Contains(err.Error(), tt.name) {
				t.Errorf("Load(%s) = %v, want an error naming %s", tt.env, err, tt.name)
			}
		})
	}
}
