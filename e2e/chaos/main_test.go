// Package chaos kills, restarts and slows parts of the running system under load and checks
// that no accepted task is lost or handled twice. `make test-e2e` runs it small;
// `make chaos` (TASKEVENTS_CHAOS=full) at full size.
package chaos

import (
	"testing"

	"github.com/taskevents/taskevents/e2e/internal/suite"
)

func TestMain(m *testing.M) { suite.Main(m, suite.Needs{Daprd: true}) }
