// Package bench is `make bench`: the publisher and the worker measured against their
// anchors (direct publishes to daprd, a go-sdk publisher, the Python FastAPI + Dapr SDK publisher and worker in tools/bench/python, a
// no-op handler) on one machine, over loopback, with interleaved repetitions.
package bench

import (
	"fmt"
	"time"

	"github.com/caarlos0/env/v11"
)

// Config is every setting of a bench run; the defaults size a run to about seven minutes
// of measuring on a 2-core machine.
type Config struct {
	Root string `env:"BENCH_ROOT"` // repository root; found from the working directory when empty
	Out  string `env:"BENCH_OUT"`  // results directory; <root>/bin/bench when empty
	// Plots is where the two PNGs go; <root>/docs/benchmarks when empty.
	Plots string `env:"BENCH_PLOTS"`

	Duration    time.Duration `env:"BENCH_DURATION" envDefault:"5s"`
	Warmup      time.Duration `env:"BENCH_WARMUP" envDefault:"1s"`
	Reps        int           `env:"BENCH_REPS" envDefault:"3"`
	Connections int           `env:"BENCH_CONNECTIONS" envDefault:"32"`
	// Sweep is the concurrency levels of the throughput plot, each run once for
	// SweepDuration (the apps are warm from the measured runs before it).
	Sweep         []int         `env:"BENCH_SWEEP" envDefault:"1,2,4,8,16,32,64,128,256"`
	SweepDuration time.Duration `env:"BENCH_SWEEP_DURATION" envDefault:"2s"`

	Backlog       int `env:"BENCH_BACKLOG" envDefault:"10000"`       // events per drain
	PythonBacklog int `env:"BENCH_PYTHON_BACKLOG" envDefault:"5000"` // events per drain of the Python worker
	// BulkMaxMessages and BulkAwaitMs replace the bulk Subscription's maxMessagesCount and
	// maxAwaitDurationMs; 0 keeps subscriptions/bulk/'s (or 100 and 50 without it).
	BulkMaxMessages int `env:"BENCH_BULK_MAX_MESSAGES"`
	BulkAwaitMs     int `env:"BENCH_BULK_AWAIT_MS"`

	E2ERate     int           `env:"BENCH_E2E_RATE" envDefault:"1000"`
	E2EDuration time.Duration `env:"BENCH_E2E_DURATION" envDefault:"10s"`
	DedupeIDs   int           `env:"BENCH_DEDUPE_IDS" envDefault:"100000"`

	Daprd        string `env:"DAPRD,notEmpty"`
	PublisherBin string `env:"PUBLISHER_BIN,notEmpty"`
	WorkerBin    string `env:"WORKER_BIN,notEmpty"`
	// The anchors; a measure whose anchor is not given is reported as skipped.
	NoopWorkerBin string `env:"NOOP_WORKER_BIN"`
	GosdkBin      string `env:"GOSDK_PUBLISHER_BIN"`
	PythonUvicorn string `env:"PYTHON_UVICORN"`
	PythonDir     string `env:"PYTHON_DIR"` // holds publisher/main.py and worker/main.py; <root>/tools/bench/python
	Wrk           string `env:"WRK" envDefault:"wrk"`
}

// LoadConfig reads the settings from environ.
func LoadConfig(environ []string) (Config, error) {
	cfg, err := env.ParseAsWithOptions[Config](env.Options{Environment: env.ToMap(environ)})
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	switch {
	case cfg.Duration < time.Second:
		return Config{}, fmt.Errorf("config: BENCH_DURATION must be at least 1s (wrk counts whole seconds), got %s", cfg.Duration)
	case cfg.SweepDuration < time.Second:
		return Config{}, fmt.Errorf("config: BENCH_SWEEP_DURATION must be at least 1s, got %s", cfg.SweepDuration)
	case cfg.Warmup < 0:
		return Config{}, fmt.Errorf("config: BENCH_WARMUP must not be negative, got %s", cfg.Warmup)
	case cfg.Reps < 1:
		return Config{}, fmt.Errorf("config: BENCH_REPS must be at least 1, got %d", cfg.Reps)
	case cfg.Connections < 1:
		return Config{}, fmt.Errorf("config: BENCH_CONNECTIONS must be at least 1, got %d", cfg.Connections)
	case cfg.Backlog < 100 || cfg.PythonBacklog < 100:
		return Config{}, fmt.Errorf("config: BENCH_BACKLOG and BENCH_PYTHON_BACKLOG must be at least 100")
	case cfg.BulkMaxMessages < 0 || cfg.BulkAwaitMs < 0:
		return Config{}, fmt.Errorf("config: BENCH_BULK_MAX_MESSAGES and BENCH_BULK_AWAIT_MS must not be negative")
	case cfg.E2ERate < 1 || cfg.E2EDuration < time.Second:
		return Config{}, fmt.Errorf("config: BENCH_E2E_RATE must be at least 1 and BENCH_E2E_DURATION at least 1s")
	}
	for _, c := range cfg.Sweep {
		if c < 1 {
			return Config{}, fmt.Errorf("config: BENCH_SWEEP levels must be at least 1, got %d", c)
		}
	}
	return cfg, nil
}
