package repo

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/taskevents/taskevents/e2e/internal/helmchart"
	"github.com/taskevents/taskevents/e2e/internal/suite"
)

// TestChartReadmeCurrent fails while charts/taskevents/README.md is not what the pinned
// helm-docs renders from values.yaml: a value documented or changed without `make
// chart-docs` would leave the README's table wrong. It renders into a copy of the chart
// without its README, so a render that wrote nothing cannot pass as an unchanged one.
func TestChartReadmeCurrent(t *testing.T) {
	helmDocs := os.Getenv("HELM_DOCS")
	if helmDocs == "" {
		t.Skip("HELM_DOCS is not set: run the chart tests with `make test`, which builds the pinned helm-docs (tools/helm-docs/build.sh) and sets HELM_DOCS")
	}
	committed, err := os.ReadFile(filepath.Join(helmchart.Dir(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	chart := filepath.Join(t.TempDir(), "taskevents")
	if err := os.CopyFS(chart, os.DirFS(helmchart.Dir())); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(chart, "README.md")); err != nil {
		t.Fatal(err)
	}
	// The same script as `make chart-docs`, so the test and the target render alike.
	cmd := exec.Command(filepath.Join(suite.Root, "tools", "helm-docs", "render.sh"), chart)
	cmd.Env = append(os.Environ(), "HELM_DOCS="+helmDocs)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tools/helm-docs/render.sh: %v\n%s", err, out)
	}
	rendered, err := os.ReadFile(filepath.Join(chart, "README.md"))
	if err != nil {
		t.Fatalf("helm-docs wrote no README.md: %v", err)
	}
	if string(rendered) != string(committed) {
		t.Errorf("charts/taskevents/README.md is stale: run `make chart-docs` and commit it. First difference:\n%s",
			firstDifference(string(committed), string(rendered)))
	}
}

// firstDifference shows the first line where the committed and the rendered README part.
func firstDifference(committed, rendered string) string {
	c, r := strings.Split(committed, "\n"), strings.Split(rendered, "\n")
	for i := range max(len(c), len(r)) {
		var cl, rl string
		if i < len(c) {
			cl = c[i]
		}
		if i < len(r) {
			rl = r[i]
		}
		if cl != rl {
			return "line " + strconv.Itoa(i+1) + "\n  committed: " + cl + "\n  rendered:  " + rl
		}
	}
	return "(line endings only)"
}
