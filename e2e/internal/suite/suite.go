// Package suite is the setup every end-to-end test package shares: it finds the repository,
// reads the contract, builds the two apps as a user would, and starts processes and systems
// through the harness. Each package's TestMain calls Main with what it needs.
//
// The tests run the real daprd, real brokers (Redis, Apache Kafka, RabbitMQ, and AWS SNS/SQS
// as moto emulates it) and the two real binaries on loopback. They need the pinned daprd
// (`make daprd`), the Kafka jars (`make kafka`; fetched on first use otherwise), moto
// (tools/moto/install.sh; installed on first use otherwise) and redis-server,
// rabbitmq-server, Java and python3-venv (`make prereqs`); `make test` provides all of them.
// BROKERS=redis,kafka selects brokers.
package suite

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskevents/taskevents/tools/harness"
)

var (
	// Root is the repository's root directory.
	Root string
	// Bins are the binaries the tests run: the apps Main builds, daprd and the tools the
	// environment names.
	Bins harness.Binaries
	// Contract is the app-ids, topic and routes as the repository's files define them;
	// tests use it instead of repeating those literals.
	Contract harness.Contract
)

// Needs says what a test package cannot run without.
type Needs struct {
	// Daprd: the package's tests start sidecars, so DAPRD must name the pinned daprd.
	Daprd bool
}

// Main is a test package's TestMain: it sets Root, Contract and Bins up, runs the tests,
// prints the binaries summary, and exits.
func Main(m *testing.M, needs Needs) {
	code, err := setup(m, needs)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e setup:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func setup(m *testing.M, needs Needs) (int, error) {
	wd, _ := os.Getwd()
	var err error
	if Root, err = harness.FindRoot(wd); err != nil {
		return 0, err
	}
	if Contract, err = harness.LoadContract(Root); err != nil {
		return 0, err
	}
	Bins.Daprd = os.Getenv("DAPRD")
	if Bins.Daprd == "" && needs.Daprd {
		return 0, fmt.Errorf("DAPRD is not set: run the end-to-end tests with `make test-e2e`, which builds the pinned daprd and sets it")
	}
	Bins.Prometheus = os.Getenv("PROMETHEUS") // only TestMonitoring needs it
	Bins.Jaeger = os.Getenv("JAEGER")         // only TestTrace needs it
	// Build the apps exactly as a user would, so the tests run the shipped binaries.
	dir, err := os.MkdirTemp("", "taskevents-e2e-bin-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	Bins.Publisher, Bins.Worker = os.Getenv("PUBLISHER_BIN"), os.Getenv("WORKER_BIN")
	for _, b := range []struct {
		path *string
		pkg  string
	}{{&Bins.Publisher, "./publisher"}, {&Bins.Worker, "./worker"}} {
		if *b.path != "" {
			continue
		}
		*b.path = filepath.Join(dir, filepath.Base(b.pkg))
		cmd := exec.Command("go", "build", "-trimpath", "-o", *b.path, b.pkg)
		cmd.Dir, cmd.Stdout, cmd.Stderr = Root, os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return 0, fmt.Errorf("build %s: %w", b.pkg, err)
		}
	}
	code := m.Run()
	if line, ok := binariesSummary(); line != "" {
		fmt.Println(line)
		if !ok && code == 0 {
			code = 1
		}
	}
	return code, nil
}

// Brokers lists the brokers to run every scenario on: BROKERS=redis,kafka selects a subset.
func Brokers() []string {
	if v := os.Getenv("BROKERS"); v != "" {
		return strings.Split(v, ",")
	}
	return allBrokers
}

// NewHarness gives a test its own scratch directory and process set. Every process's
// output goes to a log file; when the test fails, the tail of each is printed.
func NewHarness(t *testing.T) *harness.Harness {
	t.Helper()
	dir := t.TempDir()
	logPath := filepath.Join(dir, "processes.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	h, err := harness.New(Root, dir, Bins, logFile)
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

// allBrokers are the brokers every scenario runs on unless BROKERS selects some.
var allBrokers = []string{"redis", "kafka", "rabbitmq"}

// StartBroker starts the named broker in h, failing the test when it cannot.
func StartBroker(ctx context.Context, t *testing.T, h *harness.Harness, name string) *harness.Broker {
	t.Helper()
	b, err := h.StartBroker(ctx, name, 0)
	if err != nil {
		t.Fatalf("BROKERS: %v", err)
	}
	return b
}

// StartSystem starts a broker, both apps and their sidecars in a fresh harness, and checks
// they are the same binaries every other broker ran.
func StartSystem(t *testing.T, broker string, o harness.SystemOptions) *harness.System {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h := NewHarness(t)
	sys, err := h.StartSystem(ctx, StartBroker(ctx, t, h, broker), o)
	if err != nil {
		t.Fatal(err)
	}
	CheckSameBinaries(t, broker, sys)
	return sys
}

// The promise is "zero code changes": the programs that ran on every broker are
// the same bytes. Each system's running publisher and workers are hashed through
// /proc/<pid>/exe (what the kernel actually executes) and compared with the first system's.
var digests struct {
	sync.Mutex
	first     map[string]string // "publisher"/"worker" → sha256 of the first system
	firstFrom string
	printed   map[string]bool // broker → its digests were printed
	brokers   []string
	mismatch  bool
}

// CheckSameBinaries hashes the running apps of sys and compares them with the first system's.
func CheckSameBinaries(t *testing.T, broker string, sys *harness.System) {
	t.Helper()
	got := map[string]string{}
	procs := map[string][]*harness.Process{"publisher": {sys.Publisher.Process}}
	for _, w := range sys.Workers {
		procs["worker"] = append(procs["worker"], w.Process)
	}
	for app, ps := range procs {
		for _, p := range ps {
			d, err := sha256File(fmt.Sprintf("/proc/%d/exe", p.Pid()))
			if err != nil {
				t.Fatalf("hash the running %s: %v", app, err)
			}
			if prev, ok := got[app]; ok && prev != d {
				t.Errorf("two %s replicas run different binaries: %s and %s", app, prev, d)
			}
			got[app] = d
		}
	}
	digests.Lock()
	defer digests.Unlock()
	if digests.first == nil {
		digests.first, digests.firstFrom, digests.printed = got, broker, map[string]bool{}
	}
	if !digests.printed[broker] {
		digests.printed[broker] = true
		digests.brokers = append(digests.brokers, broker)
		fmt.Printf("e2e %s binaries: publisher sha256=%s worker sha256=%s\n", broker, got["publisher"], got["worker"])
	}
	for app, d := range got {
		if d != digests.first[app] {
			digests.mismatch = true
			t.Errorf("the %s on %s (sha256 %s) is not the one that ran on %s (sha256 %s)",
				app, broker, d, digests.firstFrom, digests.first[app])
		}
	}
}

func sha256File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// binariesSummary is printed after every test ran: the one line that says whether the
// same publisher and worker ran on every broker.
func binariesSummary() (string, bool) {
	digests.Lock()
	defer digests.Unlock()
	if digests.first == nil {
		return "", true
	}
	verdict := "identical"
	if digests.mismatch {
		verdict = "DIFFERENT"
	}
	return fmt.Sprintf("e2e binaries: %s across %s: publisher sha256=%s worker sha256=%s",
		verdict, strings.Join(digests.brokers, ", "), digests.first["publisher"], digests.first["worker"]), !digests.mismatch
}
