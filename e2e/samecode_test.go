package e2e

// The publisher and the worker are separate modules, each of which builds alone (its own
// directory, its own Docker context, GOWORK=off). Code whose behaviour must not differ
// between them is therefore kept as two copies, and this test holds the copies equal:
// they may differ only in their own module path.

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// sameCode lists the files, relative to each app's directory, that publisher/ and worker/
// keep identical.
var sameCode = []string{
	"internal/config/load.go",
	"internal/config/load_test.go",
	"internal/lifecycle/lifecycle.go",
	"internal/lifecycle/lifecycle_test.go",
	"internal/logbuf/logbuf.go",
	"internal/logging/logging.go",
	"internal/logging/logging_test.go",
	"internal/logtext/logtext.go",
	"internal/logtext/logtext_test.go",
	"internal/pprofserver/pprofserver.go",
	"internal/pprofserver/pprofserver_test.go",
	"internal/problem/write.go",
	"internal/problem/write_test.go",
	"internal/tracing/http.go",
	"internal/tracing/settings.go",
	"internal/tracing/settings_test.go",
	"internal/tracing/tracing.go",
	"internal/tracing/tracing_test.go",
	"internal/tracing/tracingtest/collector.go",
	"internal/tracing/tracingtest/discard.go",
}

// sameCodeMarker opens every shared file, so that a reader editing one copy knows of the other.
const sameCodeMarker = "// This file is kept identical in publisher/ and worker/ (e2e/samecode_test.go)."

func TestSameCode(t *testing.T) {
	for _, rel := range sameCode {
		t.Run(rel, func(t *testing.T) {
			pub, err := readShared(filepath.Join(root, "publisher", rel))
			if err != nil {
				t.Fatal(err)
			}
			wrk, err := readShared(filepath.Join(root, "worker", rel))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(pub, []byte(sameCodeMarker+"\n")) {
				t.Errorf("publisher/%s does not start with %q", rel, sameCodeMarker)
			}
			if msg := firstDifference(pub, wrk); msg != "" {
				t.Errorf("publisher/%s and worker/%s differ (beyond the module path) at %s\n"+
					"edit both copies alike", rel, rel, msg)
			}
		})
	}

	// A file that carries the marker but is missing from the table would drift unnoticed.
	for _, app := range []string{"publisher", "worker"} {
		err := filepath.WalkDir(filepath.Join(root, app), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(filepath.Join(root, app), path)
			if bytes.HasPrefix(b, []byte(sameCodeMarker)) && !slices.Contains(sameCode, filepath.ToSlash(rel)) {
				t.Errorf("%s/%s says it is kept identical, but sameCode in e2e/samecode_test.go does not list it", app, rel)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// readShared reads a shared file with both modules' paths replaced by one placeholder.
func readShared(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("a file kept identical in both apps is missing: %w", err)
	}
	for _, mod := range []string{"publisher", "worker"} {
		b = bytes.ReplaceAll(b, []byte(`"github.com/taskevents/taskevents/`+mod+`/`), []byte(`"MODULE/`))
	}
	return b, nil
}

// firstDifference describes the first line where a and b differ, or returns "".
func firstDifference(a, b []byte) string {
	sa, sb := bufio.NewScanner(bytes.NewReader(a)), bufio.NewScanner(bytes.NewReader(b))
	for line := 1; ; line++ {
		okA, okB := sa.Scan(), sb.Scan()
		switch {
		case !okA && !okB:
			return ""
		case okA != okB || sa.Text() != sb.Text():
			show := func(ok bool, s *bufio.Scanner) string {
				if !ok {
					return "(end of file)"
				}
				return fmt.Sprintf("%q", s.Text())
			}
			return fmt.Sprintf("line %d:\n- publisher: %s\n+ worker:    %s", line, show(okA, sa), show(okB, sb))
		}
	}
}

// TestAppsBuildAlone holds the reason for the copies: each app builds from its own
// directory with the workspace switched off, and its go.mod has no replace directive, so
// neither needs the other (nor a shared module) to build.
func TestAppsBuildAlone(t *testing.T) {
	for _, app := range []string{"publisher", "worker"} {
		t.Run(app, func(t *testing.T) {
			mod, err := os.ReadFile(filepath.Join(root, app, "go.mod"))
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(mod, []byte("replace")) {
				t.Errorf("%s/go.mod has a replace directive; the app must build without the rest of the repository", app)
			}
			cmd := exec.Command("go", "build", "-o", os.DevNull, ".")
			cmd.Dir = filepath.Join(root, app)
			cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("GOWORK=off go build in %s/: %v\n%s", app, err, out)
			}
		})
	}
}
