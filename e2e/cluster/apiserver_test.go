package cluster

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/taskevents/taskevents/e2e/internal/helmchart"
	"github.com/taskevents/taskevents/e2e/internal/suite"
	"gopkg.in/yaml.v3"
)

// kubeTools are the binaries the API-server test needs: helm (tools/helm), kube-apiserver
// and kubectl (tools/kube), and the pinned Dapr module's CRDs.
type kubeTools struct {
	helm, kubectl, daprCRDs string
	kubeconfig              string
}

func (k kubeTools) run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = suite.Root
	cmd.Env = append(os.Environ(), "KUBECONFIG="+k.kubeconfig, "HELM_CACHE_HOME="+t.TempDir(),
		"HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (k kubeTools) must(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := k.run(t, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return out
}

// TestChartOnAPIServer installs Dapr's CRDs, the chart (every ci values file) and the GitOps
// bases into a real kube-apiserver + etcd. There is no kubelet, so no pod runs: this proves
// that everything a user applies is accepted and stored as rendered; the runtime behaviour
// of the same YAML is proven self-hosted by the other end-to-end tests.
func TestChartOnAPIServer(t *testing.T) {
	kubeDir, helm := os.Getenv("KUBE_DIR"), os.Getenv("HELM")
	if kubeDir == "" || helm == "" {
		t.Fatal("KUBE_DIR and HELM are not set: run `make test-e2e`, which builds kube-apiserver, kubectl and helm")
	}
	h := suite.NewHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	api, err := h.StartKubeAPI(ctx, kubeDir)
	if err != nil {
		t.Fatal(err)
	}
	k := kubeTools{helm: helm, kubectl: filepath.Join(kubeDir, "kubectl"), kubeconfig: api.Kubeconfig}
	k.daprCRDs = filepath.Join(helmchart.ModuleDir(t, filepath.Join(suite.Root, "tools", "daprd"), "github.com/dapr/dapr"),
		"charts", "dapr", "crds")
	// Install order as in a cluster: Dapr's CRDs (the control plane's chart brings them) and
	// prometheus-operator's ServiceMonitor and PrometheusRule before anything that uses them.
	promCRDs := filepath.Join(helmchart.ModuleDir(t, os.TempDir(), helmchart.PrometheusOperatorModule), "example", "prometheus-operator-crd")
	k.must(t, k.kubectl, "apply", "--server-side", "-f", k.daprCRDs,
		"-f", filepath.Join(promCRDs, "monitoring.coreos.com_servicemonitors.yaml"),
		"-f", filepath.Join(promCRDs, "monitoring.coreos.com_prometheusrules.yaml"))
	k.must(t, k.kubectl, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")

	t.Run("gitops-bases", func(t *testing.T) {
		for _, base := range []string{"components", "subscriptions"} {
			k.must(t, k.kubectl, "apply", "--server-side", "--field-manager=gitops", "-k", base)
		}
		var sub struct {
			Spec struct {
				PubsubName      string `json:"pubsubname"`
				Topic           string `json:"topic"`
				DeadLetterTopic string `json:"deadLetterTopic"`
				Routes          struct {
					Rules []struct {
						Match string `json:"match"`
						Path  string `json:"path"`
					} `json:"rules"`
					Default string `json:"default"`
				} `json:"routes"`
			} `json:"spec"`
			Scopes []string `json:"scopes"`
		}
		out := k.must(t, k.kubectl, "get", "subscriptions.v2alpha1.dapr.io", "task-events", "-o", "json")
		suite.MustJSON(t, []byte(out), &sub)
		if sub.Spec.Topic != suite.Contract.Topic || sub.Spec.Routes.Default != suite.Contract.Route ||
			len(sub.Spec.Routes.Rules) != 1 || sub.Spec.DeadLetterTopic != suite.Contract.DeadLetterTopic ||
			len(sub.Scopes) != 1 || sub.Scopes[0] != suite.Contract.WorkerAppID {
			t.Errorf("stored Subscription differs from subscriptions/task-events.yaml: %+v", sub)
		}
		k.must(t, k.kubectl, "get", "components.dapr.io", suite.Contract.PubSub)
		k.must(t, k.kubectl, "get", "resiliencies.dapr.io", "pubsub-resiliency")
	})

	t.Run("subscription-with-v1-route-is-rejected", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.yaml")
		if err := os.WriteFile(bad, []byte(`apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata:
  name: written-for-v1alpha1
spec:
  pubsubname: pubsub
  topic: task-events
  route: /events/todo
  routes:
    default: /events/todo
`), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := k.run(t, k.kubectl, "apply", "--server-side", "-f", bad)
		if err == nil || !strings.Contains(out, "route") {
			t.Errorf("the API server accepted a v2alpha1 Subscription with the v1alpha1 route field: %v\n%s", err, out)
		}
	})

	valuesFiles, _ := filepath.Glob(filepath.Join(suite.Root, "charts", "taskevents", "ci", "*-values.yaml"))
	if len(valuesFiles) == 0 {
		t.Fatal("no charts/taskevents/ci/*-values.yaml")
	}
	for _, f := range valuesFiles {
		name := strings.TrimSuffix(filepath.Base(f), "-values.yaml")
		t.Run("helm-install-"+name, func(t *testing.T) {
			ns := "ci-" + name
			k.must(t, k.helm, "install", "taskevents", "charts/taskevents", "--namespace", ns,
				"--create-namespace", "-f", f)
			manifest := filepath.Join(t.TempDir(), "manifest.yaml")
			out := k.must(t, k.helm, "get", "manifest", "taskevents", "--namespace", ns)
			if err := os.WriteFile(manifest, []byte(out), 0o600); err != nil {
				t.Fatal(err)
			}
			// Every rendered object exists in the API server, in the release's namespace.
			got := k.must(t, k.kubectl, "get", "-f", manifest, "--namespace", ns, "-o", "name")
			rendered := countObjects(t, out)
			if n := len(strings.Fields(got)); n == 0 || n != rendered {
				t.Errorf("the API server holds %d of the %d rendered objects:\n%s", n, rendered, got)
			}
		})
	}

	// The dashboard ConfigMap and the PrometheusRule are off in every ci values file (a
	// cluster without the operator's CRDs must install them all); here they go in together,
	// and the rules' windows and `for` take the values the monitoring test shortens them to.
	t.Run("helm-install-monitoring", func(t *testing.T) {
		ns := "ci-monitoring"
		k.must(t, k.helm, "install", "taskevents", "charts/taskevents", "--namespace", ns, "--create-namespace",
			"--set", "monitoring.dashboard.enabled=true", "--set", "monitoring.prometheusRule.enabled=true",
			"--set", "monitoring.prometheusRule.retryRatio.window=1m30s", "--set", "monitoring.prometheusRule.retryRatio.for=5s")
		k.must(t, k.kubectl, "get", "--namespace", ns, "configmap", "taskevents-dashboard")
		rules := k.must(t, k.kubectl, "get", "--namespace", ns, "prometheusrules.monitoring.coreos.com", "taskevents",
			"-o", "jsonpath={.spec.groups[*].rules[*].alert}")
		if n := len(strings.Fields(rules)); n != 4 {
			t.Errorf("the stored PrometheusRule has %d alerts, want 4: %q", n, rules)
		}
		// The CRD's schema is enforced: a `for` that is not a Prometheus duration is refused.
		bad := filepath.Join(t.TempDir(), "bad-rule.yaml")
		if err := os.WriteFile(bad, []byte(`apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: {name: bad-for}
spec:
  groups:
    - name: g
      rules: [{alert: A, expr: vector(1), for: 5 minutes}]
`), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := k.run(t, k.kubectl, "apply", "--server-side", "--namespace", ns, "-f", bad); err == nil || !strings.Contains(out, "for") {
			t.Errorf("the API server accepted a PrometheusRule with for: 5 minutes: %v\n%s", err, out)
		}
	})

	// With a cluster to look it up in, a token the chart generates is made once and kept.
	t.Run("upgrade-keeps-generated-tokens", func(t *testing.T) {
		ns := "ci-generated-tokens"
		generated := []string{"--set", "tokens.app.enabled=true", "--set", "tokens.api.enabled=true"}
		k.must(t, k.helm, append([]string{"install", "taskevents", "charts/taskevents", "--namespace", ns,
			"--create-namespace"}, generated...)...)
		token := func() string {
			return k.must(t, k.kubectl, "get", "secret", "--namespace", ns, "-l", "app.kubernetes.io/instance=taskevents",
				"-o", "jsonpath={.items[*].data.token}")
		}
		before := token()
		if n := len(strings.Fields(before)); n != 2 {
			t.Fatalf("the release created %d token Secrets, want 2 (app and api): %q", n, before)
		}
		k.must(t, k.helm, append([]string{"upgrade", "taskevents", "charts/taskevents", "--namespace", ns}, generated...)...)
		if after := token(); after != before {
			t.Errorf("helm upgrade replaced a generated token: the sidecars and the apps would disagree until all restart")
		}
	})

	t.Run("typo-in-set-is-rejected", func(t *testing.T) {
		out, err := k.run(t, k.helm, "install", "typo", "charts/taskevents", "--namespace", "typo",
			"--create-namespace", "--set", "publisher.replicaCont=2")
		if err == nil || !strings.Contains(out, "replicaCont") {
			t.Errorf("helm install --set publisher.replicaCont=2 was not rejected by the schema: %v\n%s", err, out)
		}
	})
}

// countObjects counts the Kubernetes objects in a multi-document YAML stream.
func countObjects(t *testing.T, manifest string) int {
	t.Helper()
	dec := yaml.NewDecoder(strings.NewReader(manifest))
	n := 0
	for {
		var obj struct {
			Kind string `yaml:"kind"`
		}
		err := dec.Decode(&obj)
		if errors.Is(err, io.EOF) {
			return n
		}
		if err != nil {
			t.Fatalf("rendered manifest is not YAML: %v", err)
		}
		if obj.Kind != "" {
			n++
		}
	}
}
