package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"gopkg.in/yaml.v3"
)

// chartSidecar is what charts/taskevents/values.yaml says about one app's sidecar
// (<app>.dapr): the chart turns it into dapr.io/* annotations, and the local run into the
// same daprd flags, so a sidecar started here treats the app as the injected one does.
type chartSidecar struct {
	AppID                string `yaml:"appId"`
	AppProtocol          string `yaml:"appProtocol"`
	DisableInitEndpoints string `yaml:"disableInitEndpoints"`
	AppMaxConcurrency    int    `yaml:"appMaxConcurrency"`
	AppHealthCheck       struct {
		Enabled         bool   `yaml:"enabled"`
		Path            string `yaml:"path"`
		IntervalSeconds int    `yaml:"intervalSeconds"`
		TimeoutMs       int    `yaml:"timeoutMs"`
		Threshold       int    `yaml:"threshold"`
	} `yaml:"appHealthCheck"`
	GracefulShutdownSeconds int `yaml:"gracefulShutdownSeconds"`
}

// AppChannelFlags are the daprd flags for appID's channel to its app on appPort, read
// from the chart's values, and --config with the tracing Configuration the chart's
// dapr.io/config names (components/tracing.yaml; a started sidecar gets the harness's copy
// of it instead, see TracingConfig). Left out on purpose (the chart's annotations have them):
// block-shutdown-duration, which would hold every local stop for up to its 15–20 s; the
// log format; the sidecar's resources; and the tokens, which the harness passes in the
// environment. e2e/repo/daprflags_test.go holds these flags to the rendered annotations.
func AppChannelFlags(root, appID string, appPort int) ([]string, error) {
	sidecars, err := chartSidecars(root)
	if err != nil {
		return nil, err
	}
	return sidecars.flags(appID, appPort, filepath.Join(root, TracingConfigFile))
}

// sidecarsByAppID is every app's chartSidecar, by app-id.
type sidecarsByAppID map[string]chartSidecar

func (s sidecarsByAppID) flags(appID string, appPort int, config string) ([]string, error) {
	d, ok := s[appID]
	if !ok {
		return nil, fmt.Errorf("charts/taskevents/values.yaml: no <app>.dapr.appId %q", appID)
	}
	return append(d.flags(appPort), "--config", config), nil
}

// chartSidecars reads the chart's values once; the harness keeps the result for every
// sidecar it starts or restarts.
func chartSidecars(root string) (sidecarsByAppID, error) {
	path := filepath.Join(root, "charts", "taskevents", "values.yaml")
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	type app struct {
		Dapr chartSidecar `yaml:"dapr"`
	}
	var values struct {
		Publisher app `yaml:"publisher"`
		Worker    app `yaml:"worker"`
	}
	if err := yaml.Unmarshal(raw, &values); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return sidecarsByAppID{values.Publisher.Dapr.AppID: values.Publisher.Dapr, values.Worker.Dapr.AppID: values.Worker.Dapr}, nil
}

func (d chartSidecar) flags(appPort int) []string {
	flags := []string{"--app-port", strconv.Itoa(appPort), "--app-protocol", d.AppProtocol,
		"--dapr-graceful-shutdown-seconds", strconv.Itoa(d.GracefulShutdownSeconds)}
	if d.DisableInitEndpoints != "" {
		flags = append(flags, "--disable-init-endpoints", d.DisableInitEndpoints)
	}
	if d.AppMaxConcurrency > 0 {
		flags = append(flags, "--app-max-concurrency", strconv.Itoa(d.AppMaxConcurrency))
	}
	if hc := d.AppHealthCheck; hc.Enabled {
		flags = append(flags, "--enable-app-health-check", "--app-health-check-path", hc.Path,
			"--app-health-probe-interval", strconv.Itoa(hc.IntervalSeconds),
			"--app-health-probe-timeout", strconv.Itoa(hc.TimeoutMs),
			"--app-health-threshold", strconv.Itoa(hc.Threshold))
	}
	return flags
}
