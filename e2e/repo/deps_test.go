package repo

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/taskevents/taskevents/e2e/internal/suite"
)

// The point of this project is Dapr without the Dapr SDK: neither binary may link any
// github.com/dapr/ package, not even indirectly.
func TestAppsDoNotDependOnDapr(t *testing.T) {
	for _, app := range []string{"./publisher", "./worker"} {
		cmd := exec.Command("go", "list", "-deps", app)
		cmd.Dir = suite.Root
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", app, err)
		}
		deps := strings.Fields(string(out))
		if len(deps) < 10 {
			t.Fatalf("go list -deps %s listed only %d packages; the check would prove nothing", app, len(deps))
		}
		for _, d := range deps {
			if strings.HasPrefix(d, "github.com/dapr/") {
				t.Errorf("%s depends on %s", app, d)
			}
		}
	}
}
