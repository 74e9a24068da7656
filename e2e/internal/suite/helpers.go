package suite

import (
	"os"
	"testing"
	"time"

	"github.com/taskevents/taskevents/tools/harness"
)

// Handled counts the tasks a worker process logged as handled for the first time.
func Handled(p *harness.Process) int {
	n := 0
	for _, e := range harness.Events(p.Lines(), "EVENT RECEIVED") {
		if e.Outcome == "SUCCESS" && !e.Duplicate {
			n++
		}
	}
	return n
}

// WaitFor polls cond every interval until it holds or timeout passes.
func WaitFor(t *testing.T, what string, timeout, interval time.Duration, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	last := ""
	for time.Since(start) < timeout {
		ok, state := cond()
		if ok {
			return time.Since(start)
		}
		last = state
		time.Sleep(interval)
	}
	t.Fatalf("%s: not within %s (last: %s)", what, timeout, last)
	return 0
}

// MustRead reads a file, failing the test when it cannot.
func MustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
