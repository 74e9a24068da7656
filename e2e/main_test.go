// End-to-end tests: the real daprd, a real broker and the two real binaries on loopback.
// They need the pinned daprd (`make daprd`) and redis-server (`make prereqs`); `make test`
// provides both.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/taskevents/taskevents/e2e/harness"
)

var (
	root string
	bins harness.Binaries
)

func TestMain(m *testing.M) {
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e setup:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func setup(m *testing.M) (int, error) {
	wd, _ := os.Getwd()
	var err error
	if root, err = harness.FindRoot(wd); err != nil {
		return 0, err
	}
	bins.Daprd = os.Getenv("DAPRD")
	if bins.Daprd == "" {
		return 0, fmt.Errorf("DAPRD is not set: run the end-to-end tests with `make test-e2e`, which builds the pinned daprd and sets it")
	}
	// Build the apps exactly as a user would, so the tests run the shipped binaries.
	dir, err := os.MkdirTemp("", "taskevents-e2e-bin-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	bins.Publisher, bins.Worker = os.Getenv("PUBLISHER_BIN"), os.Getenv("WORKER_BIN")
	for _, b := range []struct {
		path *string
		pkg  string
	}{{&bins.Publisher, "./publisher"}, {&bins.Worker, "./worker"}} {
		if *b.path != "" {
			continue
		}
		*b.path = filepath.Join(dir, filepath.Base(b.pkg))
		cmd := exec.Command("go", "build", "-trimpath", "-o", *b.path, b.pkg)
		cmd.Dir, cmd.Stdout, cmd.Stderr = root, os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return 0, fmt.Errorf("build %s: %w", b.pkg, err)
		}
	}
	return m.Run(), nil
}

// brokers lists the brokers to run every scenario on: BROKERS=redis,kafka selects a subset.
func brokers() []string {
	if v := os.Getenv("BROKERS"); v != "" {
		return strings.Split(v, ",")
	}
	return []string{"redis"}
}

// newHarness gives a test its own scratch directory and process set. Every process's
// output goes to a log file; when the test fails, the tail of each is printed.
func newHarness(t *testing.T) *harness.Harness {
	t.Helper()
	dir := t.TempDir()
	logPath := filepath.Join(dir, "processes.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	h, err := harness.New(root, dir, bins, logFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range h.Processes() {
				t.Logf("last lines of %s:\n%s", p.Name, p.Tail(40))
			}
		}
		if err := h.Close(); err != nil {
			t.Errorf("stopping processes: %v", err)
		}
		_ = logFile.Close()
	})
	return h
}

func startBroker(ctx context.Context, t *testing.T, h *harness.Harness, name string) *harness.Broker {
	t.Helper()
	switch name {
	case "redis":
		b, err := h.StartRedis(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		return b
	default:
		t.Fatalf("unknown broker %q in BROKERS (valid: redis)", name)
		return nil
	}
}

func startSystem(t *testing.T, broker string, o harness.SystemOptions) *harness.System {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h := newHarness(t)
	sys, err := h.StartSystem(ctx, startBroker(ctx, t, h, broker), o)
	if err != nil {
		t.Fatal(err)
	}
	return sys
}
