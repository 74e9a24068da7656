package flows

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/taskevents/taskevents/e2e/internal/suite"
	"github.com/taskevents/taskevents/tools/harness"
)

// `make run` as a user meets it: taskevents-local prints the curl to try, that curl is
// handled, and one SIGTERM stops every process it started (the README promises both).
func TestLocalRunStopsEverythingOnSIGTERM(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "taskevents-local")
	build := exec.Command("go", "build", "-o", bin, "./tools/cmd/taskevents-local")
	build.Dir = suite.Root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build taskevents-local: %v\n%s", err, out)
	}
	env := []string{"DAPRD=" + suite.Bins.Daprd, "PUBLISHER_BIN=" + suite.Bins.Publisher, "WORKER_BIN=" + suite.Bins.Worker, "BROKER=redis"}
	for _, name := range []string{"PUBLISHER_PORT", "WORKER_PORT", "PUBLISHER_DAPR_HTTP_PORT", "WORKER_DAPR_HTTP_PORT", "REDIS_PORT"} {
		port, err := harness.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		env = append(env, name+"="+strconv.Itoa(port))
	}
	h := suite.NewHarness(t)
	run, err := harness.StartProcess("make-run", h.Sink, append(os.Environ(), env...), suite.Root, bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = run.Stop(5 * time.Second) })

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	curl, err := run.WaitForLine(ctx, func(l string) bool { return strings.Contains(l, "curl -i -X POST") })
	if err != nil {
		t.Fatal(err)
	}
	url := strings.Fields(curl[strings.Index(curl, "http://"):])[0]
	r, err := suite.Post(ctx, url, "application/json", `{"title": "Learn Dapr pub/sub"}`, nil)
	if err != nil || r.Status != http.StatusAccepted {
		t.Fatalf("the printed curl answered %d %s (%v), want 202", r.Status, r.Body, err)
	}
	var c suite.Created
	suite.MustJSON(t, r.Body, &c)
	if _, err := run.WaitForLine(ctx, func(l string) bool {
		return strings.HasPrefix(l, "[worker] ") && strings.Contains(l, `"EVENT RECEIVED"`) && strings.Contains(l, c.ID)
	}); err != nil {
		t.Fatal(err)
	}

	children := childPIDs(t, run)
	if len(children) < 5 { // redis, 2 daprd, 2 apps
		t.Fatalf("found %d processes under taskevents-local, want at least 5: %v", len(children), children)
	}
	if err := syscall.Kill(run.Pid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		exited, waitErr := run.Exited()
		if exited {
			if waitErr != nil {
				t.Errorf("taskevents-local exited with %v after SIGTERM, want 0", waitErr)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("taskevents-local still runs 60 s after SIGTERM")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, pid := range children {
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("process %d (%s) outlived taskevents-local", pid, comm(pid))
		}
	}
	fmt.Printf("e2e make-run: published=1 handled=1 lost=0 duplicates=0 stopped=%d\n", len(children))
}

// childPIDs lists the processes whose parent is p (each in its own process group).
func childPIDs(t *testing.T, p *harness.Process) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the parenthesised command: state, ppid, …
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(p.Pid()) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func comm(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}
