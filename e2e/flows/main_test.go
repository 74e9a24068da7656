// Package flows runs the system end to end: the two real binaries, the pinned daprd and real
// brokers on loopback, through every scenario the README promises (scenarios, bulk subscribe,
// coalescing, dead letters, faults, Kafka, limits, metrics, tracing, monitoring, secrets, the
// OpenAPI and AsyncAPI contracts, `make run`). BROKERS=redis,kafka selects brokers.
package flows

import (
	"testing"

	"github.com/taskevents/taskevents/e2e/internal/suite"
)

func TestMain(m *testing.M) { suite.Main(m, suite.Needs{Daprd: true}) }
