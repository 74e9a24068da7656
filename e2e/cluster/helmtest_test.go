package cluster

// The chart's `helm test` pod runs in the real cluster in TestCluster. This test runs its
// script here, with the same busybox's commands (Debian's busybox-static, what the test image
// is built from) against the real local system (Redis, both daprd sidecars, both apps), with a
// stand-in nslookup that answers like busybox's for the worker's headless Service. It must
// pass against the real flow and fail when the publisher answers 202 without anything
// reaching the worker.

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/taskevents/taskevents/e2e/internal/helmchart"
	"github.com/taskevents/taskevents/e2e/internal/suite"
	"github.com/taskevents/taskevents/tools/harness"
)

func TestChartHelmTestHook(t *testing.T) {
	helmchart.Helm(t)
	var pod helmchart.Object
	for _, o := range helmchart.Render(t) {
		if o.Kind() == "Pod" && helmchart.DigString(o, "metadata", "annotations", "helm.sh/hook") == "test" {
			pod = o
		}
	}
	if pod == nil {
		t.Fatal("the chart renders no helm test pod")
	}
	c := helmchart.Dig(pod, "spec", "containers", "0")
	command := helmchart.AsList(helmchart.Dig(c, "command"))
	if len(command) != 3 || command[0] != "/bin/sh" || command[1] != "-c" {
		t.Fatalf("test pod command %v: want /bin/sh -c <script>", command)
	}
	script := command[2].(string)
	var names []string
	for _, e := range helmchart.AsList(helmchart.Dig(c, "env")) {
		names = append(names, helmchart.DigString(e, "name"))
	}
	slices.Sort(names)
	if want := []string{"PUBLISHER_URL", "TIMEOUT_SECONDS", "WORKER_PODS", "WORKER_PORT"}; !slices.Equal(names, want) {
		t.Fatalf("test pod env %v; this test sets %v", names, want)
	}
	workerPods := helmchart.EnvValue(c, "WORKER_PODS")

	// Every busybox applet on PATH, as in the test image, then busybox nslookup's output for
	// a headless Service with one ready pod.
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatal("busybox is not installed: run `make prereqs` (busybox-static)")
	}
	bin := t.TempDir()
	applets, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range strings.Fields(string(applets)) {
		if err := os.Symlink(busybox, filepath.Join(bin, a)); err != nil {
			t.Fatal(err)
		}
	}
	_ = os.Remove(filepath.Join(bin, "nslookup"))
	fake := "#!/bin/sh\nprintf 'Server:\\t\\t10.96.0.10\\nAddress:\\t10.96.0.10:53\\n\\nName:\\t%s\\nAddress: 127.0.0.1\\n\\n' \"$1\"\n"
	if err := os.WriteFile(filepath.Join(bin, "nslookup"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}

	sys := suite.StartSystem(t, "redis", harness.SystemOptions{})
	run := func(publisherURL, timeout string) (string, error) {
		// The host's sh runs the script, so that the stand-in nslookup on PATH wins over
		// busybox's built-in applet; every other command is busybox's.
		cmd := exec.Command("/bin/sh", "-c", script)
		cmd.Env = append(os.Environ(),
			"PATH="+bin,
			"PUBLISHER_URL="+publisherURL,
			"WORKER_PODS="+workerPods,
			"WORKER_PORT="+strings.TrimPrefix(sys.Workers[0].OpsURL, "http://127.0.0.1:"),
			"TIMEOUT_SECONDS="+timeout)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	out, err := run(sys.Publisher.URL, "30")
	if err != nil || !strings.Contains(out, "PASS: the worker handled the task") {
		t.Fatalf("the helm test script failed against the real flow: %v\n%s", err, out)
	}
	t.Logf("against the real flow:\n%s", out)

	// A publisher that answers 202 but publishes nothing: the script must notice.
	liar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"id":"x","title":"x","event":"published"}`))
	}))
	defer liar.Close()
	out, err = run(liar.URL, "4")
	if err == nil || !strings.Contains(out, "FAIL: no worker pod counted a SUCCESS delivery") {
		t.Fatalf("the helm test script passed although nothing reached the worker: %v\n%s", err, out)
	}
}
