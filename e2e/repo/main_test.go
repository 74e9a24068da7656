// Package repo checks the repository without running daprd: the README and docs, the chart
// and its schema, GitOps files against the chart, the Dockerfiles, dependencies and hygiene.
package repo

import (
	"testing"

	"github.com/taskevents/taskevents/e2e/internal/suite"
)

func TestMain(m *testing.M) { suite.Main(m, suite.Needs{}) }
