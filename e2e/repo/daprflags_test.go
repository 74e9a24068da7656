package repo

// The local run (make run, these tests) starts daprd by hand; on Kubernetes the injector
// starts it from the chart's dapr.io/* annotations. Both come from the chart's values
// (harness.AppChannelFlags), and this test holds the flags to the rendered annotations.

import (
	"slices"
	"strings"
	"testing"

	"github.com/taskevents/taskevents/e2e/internal/helmchart"
	"github.com/taskevents/taskevents/e2e/internal/suite"
	"github.com/taskevents/taskevents/tools/harness"
)

func TestLocalSidecarFlagsMatchChart(t *testing.T) {
	helmchart.Helm(t)
	// annotation → daprd flag; "" marks a boolean flag set when the annotation is "true".
	mirrored := map[string]string{
		"dapr.io/app-protocol":              "--app-protocol",
		"dapr.io/disable-init-endpoints":    "--disable-init-endpoints",
		"dapr.io/app-max-concurrency":       "--app-max-concurrency",
		"dapr.io/enable-app-health-check":   "",
		"dapr.io/app-health-check-path":     "--app-health-check-path",
		"dapr.io/app-health-probe-interval": "--app-health-probe-interval",
		"dapr.io/app-health-probe-timeout":  "--app-health-probe-timeout",
		"dapr.io/app-health-threshold":      "--app-health-threshold",
		"dapr.io/graceful-shutdown-seconds": "--dapr-graceful-shutdown-seconds",
		// The annotation names a Configuration, the flag a file holding it: compared by name.
		"dapr.io/config": "--config",
	}
	// Not mirrored, each for a reason: the harness picks its own ports and passes tokens in
	// the environment, runs daprd on loopback without Kubernetes, and stops processes at
	// once (block-shutdown-duration would hold every stop for 15–20 s).
	local := []string{"dapr.io/enabled", "dapr.io/app-id", "dapr.io/app-port", "dapr.io/log-level", "dapr.io/log-as-json",
		"dapr.io/enable-api-logging", "dapr.io/block-shutdown-duration",
		"dapr.io/disable-builtin-k8s-secret-store", "dapr.io/app-token-secret", "dapr.io/api-token-secret",
		"dapr.io/sidecar-cpu-request", "dapr.io/sidecar-memory-request", "dapr.io/sidecar-cpu-limit",
		"dapr.io/sidecar-memory-limit", "dapr.io/sidecar-liveness-probe-threshold"}

	// With tracing on, as every local daprd runs (its --config is the tracing Configuration).
	var checked int
	for _, d := range helmchart.Render(t, "-f", helmchart.Dir()+"/ci/ha-values.yaml", "--set", "tracing.enabled=true") {
		if d.Kind() != "Deployment" {
			continue
		}
		ann, _ := helmchart.Dig(d, "spec", "template", "metadata", "annotations").(map[string]any)
		appID, _ := ann["dapr.io/app-id"].(string)
		flags, err := harness.AppChannelFlags(suite.Root, appID, 1234)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{}
		for name, v := range ann {
			value, _ := v.(string)
			flag, ok := mirrored[name]
			switch {
			case ok && flag == "" && value == "true":
				want["--enable-app-health-check"] = ""
			case ok && flag != "":
				want[flag] = value
			case !ok && !slices.Contains(local, name) && strings.HasPrefix(name, "dapr.io/"):
				t.Errorf("%s: annotation %s is neither mirrored by the local run nor listed as left out", appID, name)
			}
		}
		got := map[string]string{}
		for i := 0; i < len(flags); i++ {
			if i+1 < len(flags) && !strings.HasPrefix(flags[i+1], "--") {
				got[flags[i]] = flags[i+1]
				i++
				continue
			}
			got[flags[i]] = ""
		}
		if got["--app-port"] != "1234" {
			t.Errorf("%s: local flags %v give no --app-port 1234", appID, flags)
		}
		delete(got, "--app-port")
		if file, ok := got["--config"]; ok {
			got["--config"] = helmchart.DigString(decodeFile(t, file)[0], "metadata", "name")
		}
		for flag, v := range want {
			if g, ok := got[flag]; !ok || g != v {
				t.Errorf("%s: the chart's annotations give %s %q, the local daprd %q (set: %v)", appID, flag, v, g, ok)
			}
		}
		for flag, v := range got {
			if _, ok := want[flag]; !ok {
				t.Errorf("%s: the local daprd gets %s %q, which no annotation of the chart gives", appID, flag, v)
			}
		}
		checked++
	}
	if checked != 2 {
		t.Fatalf("checked %d Deployments, want the publisher's and the worker's", checked)
	}
}
