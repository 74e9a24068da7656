package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	kitconfig "github.com/taskevents/taskevents/kit/config"
)

func TestDefaults(t *testing.T) {
	cfg, err := Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Shared: kitconfig.Shared{DaprHost: "127.0.0.1", DaprHTTPPort: 3500, LogLevel: "info", DrainDelay: 5 * time.Second},

		Port: 8001, OpsPort: 8002, MaxEventBytes: 1 << 20,
		MaxBatchBytes: 4 << 20, BulkConcurrency: 48,
		DedupeStore: "statestore", DedupeLease: 15 * time.Second,
		DedupeMaxEntries: 100000, DedupeTTL: 24 * time.Hour, HandlerTimeout: 4 * time.Second,
		ShutdownTimeout: 15 * time.Second,
	}
	if cfg != want {
		t.Errorf("defaults = %+v\nwant %+v", cfg, want)
	}
	if cfg.Level() != zerolog.InfoLevel {
		t.Errorf("Level() = %v", cfg.Level())
	}
}

func TestValues(t *testing.T) {
	cfg, err := Load([]string{
		"APP_PORT=0", "LISTEN_HOST=127.0.0.1", "APP_API_TOKEN=s3cret", "LOG_LEVEL=debug",
		"MAX_EVENT_BYTES=2048", "DEDUPE_MAX_ENTRIES=5", "DEDUPE_TTL=1m", "HANDLER_TIMEOUT=2s",
		"FAULT_RETRY_RATE=0.25", "FAULT_RETRY_FIRST=2", "FAULT_DELAY=10ms", "DRAIN_DELAY=0s", "SHUTDOWN_TIMEOUT=3s",
		"OPS_PORT=9000", "OPS_LISTEN_HOST=0.0.0.0", "DAPR_HOST=::1", "DAPR_HTTP_PORT=3600", "DAPR_API_TOKEN=d4pr",
		"DEDUPE_STORE=memory", "DEDUPE_LEASE=1m", "FAULT_DROP_TITLE=poison",
		"MAX_BATCH_BYTES=65536", "BULK_CONCURRENCY=4", "PPROF_ADDR=127.0.0.1:6060",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Shared: kitconfig.Shared{LogLevel: "debug", DaprHost: "::1", DaprHTTPPort: 3600, DaprAPIToken: "d4pr",
			PprofAddr: "127.0.0.1:6060", DrainDelay: 0, ListenHost: "127.0.0.1", OpsListenHost: "0.0.0.0"},
		Port: 0, APIToken: "s3cret", MaxEventBytes: 2048,
		OpsPort:     9000,
		DedupeStore: "memory", DedupeLease: time.Minute, FaultDropTitle: "poison",
		DedupeMaxEntries: 5, DedupeTTL: time.Minute, HandlerTimeout: 2 * time.Second,
		FaultRetryRate: 0.25, FaultRetryFirst: 2, FaultDelay: 10 * time.Millisecond,
		ShutdownTimeout: 3 * time.Second, MaxBatchBytes: 65536, BulkConcurrency: 4,
	}
	if cfg != want {
		t.Errorf("got %+v\nwant %+v", cfg, want)
	}
	if cfg.Level() != zerolog.DebugLevel {
		t.Errorf("Level() = %v", cfg.Level())
	}
	if cfg.UsesStateStore() || cfg.SidecarBaseURL() != "http://[::1]:3600" {
		t.Errorf("UsesStateStore = %v, SidecarBaseURL = %q", cfg.UsesStateStore(), cfg.SidecarBaseURL())
	}
}

func TestInvalid(t *testing.T) {
	tests := []struct {
		env  string
		want string
	}{
		{"APP_PORT=abc", "APP_PORT"},
		{"APP_PORT=70000", "APP_PORT must be between 0 and 65535"},
		{"APP_PORT=-1", "APP_PORT"},
		{"LOG_LEVEL=loud", "LOG_LEVEL"},
		{"LOG_LEVEL=trace", "LOG_LEVEL"},
		{"MAX_EVENT_BYTES=0", "MAX_EVENT_BYTES must be positive"},
		{"MAX_EVENT_BYTES=1MiB", "MAX_EVENT_BYTES"},
		{"DEDUPE_MAX_ENTRIES=0", "DEDUPE_MAX_ENTRIES"},
		{"DEDUPE_TTL=0s", "DEDUPE_TTL"},
		{"DEDUPE_TTL=forever", "DEDUPE_TTL"},
		{"HANDLER_TIMEOUT=-1s", "HANDLER_TIMEOUT"},
		{"FAULT_RETRY_RATE=2", "config: FAULT_RETRY_RATE must be between 0 and 1, got 2"},
		{"FAULT_RETRY_RATE=NaN", "FAULT_RETRY_RATE"},
		{"FAULT_RETRY_RATE=-0.1", "FAULT_RETRY_RATE"},
		{"FAULT_RETRY_FIRST=-1", "FAULT_RETRY_FIRST"},
		{"FAULT_RETRY_FIRST=two", "FAULT_RETRY_FIRST"},
		{"FAULT_DELAY=-5ms", "FAULT_DELAY"},
		{"FAULT_DELAY=5", "FAULT_DELAY"},
		{"DRAIN_DELAY=-1s", "DRAIN_DELAY"},
		{"SHUTDOWN_TIMEOUT=4s", "SHUTDOWN_TIMEOUT (4s) must be greater than HANDLER_TIMEOUT (4s)"},
		{"OPS_PORT=8001", "OPS_PORT must differ from APP_PORT"},
		{"OPS_PORT=65536", "OPS_PORT must be between"},
		{"DAPR_HTTP_PORT=0", "DAPR_HTTP_PORT must be between 1 and 65535"},
		{"DEDUPE_LEASE=5s", "DEDUPE_LEASE (5s) must be at least twice HANDLER_TIMEOUT (4s)"},
		{"DEDUPE_LEASE=soon", "DEDUPE_LEASE"},
		{"MAX_BATCH_BYTES=0", "MAX_BATCH_BYTES must be positive"},
		{"BULK_CONCURRENCY=0", "BULK_CONCURRENCY must be at least 1"},
		{"BULK_CONCURRENCY=many", "BULK_CONCURRENCY"},
		{"PPROF_ADDR=6060", "PPROF_ADDR must be host:port"},
		{"PPROF_ADDR=localhost:", "PPROF_ADDR must be host:port"},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			_, err := Load([]string{tt.env})
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "config: ") {
				t.Errorf("error %q lacks the config: prefix", err)
			}
		})
	}
}

func TestTokenNeverInErrors(t *testing.T) {
	_, err := Load([]string{"APP_API_TOKEN=s3cret-token", "DAPR_API_TOKEN=d4pr-token", "APP_PORT=x", "FAULT_RETRY_RATE=9"})
	if err == nil || strings.Contains(err.Error(), "s3cret-token") || strings.Contains(err.Error(), "d4pr-token") {
		t.Fatalf("err = %v", err)
	}
}

// The handler must give up before daprd does: past the Resiliency policy's delivery timeout
// daprd stops waiting and redelivers while the handler still runs. And daprd's retries must
// outlast the lease of a claim whose worker was killed: each attempt that finds the event
// claimed waits up to HANDLER_TIMEOUT, so the attempts alone (backoff not counted) must
// cover the lease plus one handler run, or the event is dead-lettered instead of handled.
// Two files, one set of facts.
func TestTimeoutsAgreeWithResiliency(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "components", "resiliency.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	field := func(name string) string {
		m := regexp.MustCompile(`(?m)^\s+` + name + `:\s*(\S+)\s*$`).FindSubmatch(raw)
		if m == nil {
			t.Fatalf("components/resiliency.yaml has no %s", name)
		}
		return string(m[1])
	}
	delivery, err := time.ParseDuration(field("delivery"))
	if err != nil {
		t.Fatal(err)
	}
	retries, err := strconv.Atoi(field("maxRetries"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HandlerTimeout >= delivery {
		t.Errorf("HANDLER_TIMEOUT default %s is not below the Resiliency delivery timeout %s", cfg.HandlerTimeout, delivery)
	}
	if attempts := time.Duration(retries+1) * cfg.HandlerTimeout; attempts < cfg.DedupeLease+cfg.HandlerTimeout {
		t.Errorf("%d delivery attempts waiting up to HANDLER_TIMEOUT (%s) each cover %s, less than DEDUPE_LEASE %s plus one handler run",
			retries+1, cfg.HandlerTimeout, attempts, cfg.DedupeLease)
	}
}
