package cluster

// The user's Kubernetes path on a real single-node cluster built here: etcd, the Kubernetes
// v1.37.2 control plane, containerd 2 with runc, a kubelet, kube-proxy, CoreDNS, Dapr's own
// control plane installed with Dapr's own Helm chart, and images built from this
// repository's binaries. Nothing is faked and nothing is pulled. `make test-cluster` builds
// what it needs and sets the variables below.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/taskevents/taskevents/e2e/internal/dockerfile"
	"github.com/taskevents/taskevents/e2e/internal/helmchart"
	"github.com/taskevents/taskevents/e2e/internal/suite"
	"github.com/taskevents/taskevents/tools/harness"
	"github.com/taskevents/taskevents/tools/images"
)

// clusterEnv names the builds TestCluster runs, as `make test-cluster` passes them.
type clusterEnv struct {
	kubeDir, containerdDir, helm, coredns, daprControlPlane, daprChart string
}

func loadClusterEnv(t *testing.T) clusterEnv {
	t.Helper()
	e := clusterEnv{kubeDir: os.Getenv("KUBE_DIR"), containerdDir: os.Getenv("CONTAINERD_DIR"),
		helm: os.Getenv("HELM"), coredns: os.Getenv("COREDNS"), daprControlPlane: os.Getenv("DAPR_CONTROL_PLANE_DIR")}
	for name, v := range map[string]string{"KUBE_DIR": e.kubeDir, "CONTAINERD_DIR": e.containerdDir, "HELM": e.helm,
		"COREDNS": e.coredns, "DAPR_CONTROL_PLANE_DIR": e.daprControlPlane} {
		if v == "" {
			t.Skipf("%s is not set: run the cluster test with `make test-cluster`, which builds every part and sets it", name)
		}
	}
	e.daprChart = filepath.Join(helmchart.ModuleDir(t, filepath.Join(suite.Root, "tools", "daprd"), "github.com/dapr/dapr"), "charts", "dapr")
	return e
}

// kube is what the test drives the cluster with: the pinned kubectl and helm, as a user
// types them, from the repository root.
type kube struct {
	t    *testing.T
	h    *harness.Harness // brokers that run on the node
	c    *harness.Cluster
	helm string
	home string // helm's config, cache and data
	// verdict is the short account of the first failure, printed as TestCluster's very last
	// lines: CI shows only the tail of the output, which is otherwise the processes' logs.
	verdict *string
}

// with is k failing t instead: each subtest fails itself, not its parent.
func (k *kube) with(t *testing.T) *kube {
	c := *k
	c.t = t
	return &c
}

func (k *kube) env() []string {
	return append(k.c.Env(), "HELM_CONFIG_HOME="+filepath.Join(k.home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(k.home, "cache"), "HELM_DATA_HOME="+filepath.Join(k.home, "data"))
}

func (k *kube) run(timeout time.Duration, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir, cmd.Env = suite.Root, k.env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (k *kube) kubectl(args ...string) (string, error) {
	return k.run(3*time.Minute, filepath.Join(k.c.KubeDir(), "kubectl"), args...)
}

func (k *kube) mustKubectl(args ...string) string {
	k.t.Helper()
	out, err := k.kubectl(args...)
	if err != nil {
		k.fatal(err)
	}
	return out
}

// uninstall removes the release and waits until its pods are gone: a worker still draining
// is in the same consumer group as the next release's and could take that release's events
// (a cold run here lost ci-values/tokens' task to one of ha-values' workers that way).
func (k *kube) uninstall(t *testing.T) {
	t.Helper()
	k.mustHelm("uninstall", "taskevents", "--wait", "--timeout", "3m")
	suite.WaitFor(t, "the release's pods to be gone after helm uninstall", 2*time.Minute, time.Second, func() (bool, string) {
		l := k.pods(appLabel)
		return len(l.Items) == 0, fmt.Sprintf("%d pods", len(l.Items))
	})
}

// fatal fails the test, and keeps the first failure's message for the verdict.
func (k *kube) fatal(err error) {
	k.t.Helper()
	if k.verdict != nil && *k.verdict == "" {
		msg := err.Error()
		if lines := strings.Split(msg, "\n"); len(lines) > 40 {
			msg = strings.Join(append(lines[:20], append([]string{"…"}, lines[len(lines)-20:]...)...), "\n")
		}
		*k.verdict = msg
	}
	k.t.Fatal(err)
}

func (k *kube) mustHelm(args ...string) string {
	k.t.Helper()
	out, err := k.run(6*time.Minute, k.helm, args...)
	if err != nil {
		k.fatal(err)
	}
	return out
}

// applyManifest applies one of e2e/cluster/testdata with the image refs filled in.
func (k *kube) applyManifest(name string, vars map[string]string) {
	k.t.Helper()
	b, err := os.ReadFile(filepath.Join(suite.Root, "e2e", "cluster", "testdata", name))
	if err != nil {
		k.t.Fatal(err)
	}
	s := string(b)
	for key, v := range vars {
		s = strings.ReplaceAll(s, "${"+key+"}", v)
	}
	k.applyYAML(name, s)
}

// applyYAML writes body to a file called name and applies it with kubectl apply -f.
func (k *kube) applyYAML(name, body string) {
	k.t.Helper()
	path := filepath.Join(k.t.TempDir(), name)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		k.t.Fatal(err)
	}
	k.mustKubectl("apply", "-f", path)
}

// podList is the part of `kubectl get pods -o json` the test reads.
type podList struct {
	Items []struct {
		Metadata struct {
			Name              string            `json:"name"`
			UID               string            `json:"uid"`
			Annotations       map[string]string `json:"annotations"`
			DeletionTimestamp string            `json:"deletionTimestamp"`
		} `json:"metadata"`
		Spec struct {
			Containers []struct {
				Name  string `json:"name"`
				Image string `json:"image"`
				Ports []struct {
					ContainerPort int `json:"containerPort"`
				} `json:"ports"`
			} `json:"containers"`
		} `json:"spec"`
		Status struct {
			Phase             string `json:"phase"`
			PodIP             string `json:"podIP"`
			ContainerStatuses []struct {
				Name         string `json:"name"`
				Ready        bool   `json:"ready"`
				RestartCount int    `json:"restartCount"`
			} `json:"containerStatuses"`
		} `json:"status"`
	} `json:"items"`
}

func (k *kube) pods(selector string, extra ...string) podList {
	k.t.Helper()
	var l podList
	out := k.mustKubectl(append([]string{"get", "pods", "-l", selector, "-o", "json"}, extra...)...)
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		k.t.Fatalf("kubectl get pods: %v", err)
	}
	return l
}

// live drops the pods on their way out (a previous release's, a previous revision's).
func (l podList) live() podList {
	var out podList
	for _, p := range l.Items {
		if p.Metadata.DeletionTimestamp == "" {
			out.Items = append(out.Items, p)
		}
	}
	return out
}

// containerPort is the first port container name of pod i declares.
func (l podList) containerPort(i int, name string) int {
	for _, c := range l.Items[i].Spec.Containers {
		if c.Name == name && len(c.Ports) > 0 {
			return c.Ports[0].ContainerPort
		}
	}
	return 0
}

// readyPods counts the live pods, those whose every container is ready, and those that
// have a daprd container the injector added.
func (l podList) readyPods() (ready, injected, total int) {
	for _, p := range l.live().Items {
		total++
		all := len(p.Status.ContainerStatuses) > 0
		for _, s := range p.Status.ContainerStatuses {
			all = all && s.Ready
		}
		if all && p.Status.Phase == "Running" {
			ready++
		}
		for _, c := range p.Spec.Containers {
			if c.Name == "daprd" {
				injected++
			}
		}
	}
	return ready, injected, total
}

const (
	// appLabel selects the release's two apps (not its helm test pod).
	appLabel       = "app.kubernetes.io/instance=taskevents,app.kubernetes.io/component in (publisher,worker)"
	workerLabel    = "app.kubernetes.io/instance=taskevents,app.kubernetes.io/component=worker"
	publisherLabel = "app.kubernetes.io/instance=taskevents,app.kubernetes.io/component=publisher"
)

// TestCluster walks the README's Kubernetes path and the troubleshooting rows it can
// reproduce, then tears the cluster down and counts what it left behind. It prints one line:
// cluster: pods_ready=… sidecars_injected=… event_handled=… helm_test=… subscription_reload_s=…
// upgrade_accepted=… upgrade_lost=… leftovers=…
func TestCluster(t *testing.T) {
	e := loadClusterEnv(t)
	// Registered before the harness, so it runs after the harness has printed every
	// process's last lines.
	var verdict string
	t.Cleanup(func() {
		if t.Failed() && verdict != "" {
			t.Logf("TestCluster failed; in short (the whole account is above):\n%s", verdict)
		}
	})
	h := suite.NewHarness(t)
	start := time.Now()

	// Images build while the cluster starts: both are minutes of mostly different work.
	type built struct {
		imgs []images.Image
		err  error
	}
	appVersion, err := images.ChartAppVersion(filepath.Join(suite.Root, "charts", "taskevents", "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// The app images hold exactly what the Dockerfiles build: their build stages replayed.
	di := dockerfile.LoadDockerignore(t, filepath.Join(suite.Root, ".dockerignore"))
	buildCtx := dockerfile.BuildContext(t, di)
	publisherBin := dockerfile.Build(t, buildCtx, "publisher")
	workerBin := dockerfile.Build(t, buildCtx, "worker")
	imagesDone := make(chan built, 1)
	go func() {
		imgs, err := images.BuildAll(context.Background(), images.Inputs{
			OutDir: filepath.Join(h.Dir, "images"), Publisher: publisherBin, Worker: workerBin,
			Daprd: suite.Bins.Daprd, DaprControlPlaneDir: e.daprControlPlane, CoreDNS: e.coredns,
			AppVersion: appVersion,
		})
		imagesDone <- built{imgs, err}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c, err := h.StartCluster(ctx, harness.ClusterBins{KubeDir: e.kubeDir, ContainerdDir: e.containerdDir})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			if err := c.Close(); err != nil {
				t.Errorf("cluster teardown: %v", err)
			}
		}
	})
	t.Logf("cluster: node Ready after %s", time.Since(start).Round(time.Second))
	b := <-imagesDone
	if b.err != nil {
		t.Fatalf("build images: %v", b.err)
	}
	for _, img := range b.imgs {
		if err := c.ImportImage(ctx, img.Tar); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("cluster: %d images imported after %s", len(b.imgs), time.Since(start).Round(time.Second))

	k := &kube{t: t, h: h, c: c, helm: e.helm, home: t.TempDir(), verdict: &verdict}
	k.applyManifest("coredns.yaml", map[string]string{"COREDNS_IMAGE": images.CoreDNSRef})
	k.applyManifest("redis.yaml", map[string]string{"REDIS_IMAGE": images.RedisRef})
	// Dapr as a user installs it, from its own chart (the pinned module's charts/dapr):
	// non-HA, the scheduler on in-memory storage (there is no storage provisioner), and the
	// control plane from the one ghcr.io/dapr/dapr image, as Dapr's Makefile does.
	k.mustHelm("install", "dapr", e.daprChart, "--namespace", "dapr-system", "--create-namespace",
		"--set", "global.tag="+images.DaprVersion, "--set", "global.ha.enabled=false",
		"--set", "dapr_scheduler.cluster.inMemoryStorage=true",
		"--set", "dapr_operator.image.name=dapr", "--set", "dapr_placement.image.name=dapr",
		"--set", "dapr_sentry.image.name=dapr", "--set", "dapr_scheduler.image.name=dapr",
		"--set", "dapr_sidecar_injector.injectorImage.name=dapr",
		"--wait", "--timeout", "5m")
	k.mustKubectl("-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout=2m")
	k.waitForInjection(t)
	t.Logf("cluster: Dapr %s control plane Ready after %s:\n%s", images.DaprVersion, time.Since(start).Round(time.Second),
		k.mustKubectl("get", "pods", "-n", "dapr-system"))

	var summary clusterSummary
	t.Run("install", func(t *testing.T) { summary.install(t, k.with(t)) })
	if t.Failed() {
		return
	}
	t.Run("subscription-reload", func(t *testing.T) { summary.subscriptionReload(t, k.with(t)) })
	t.Run("upgrade", func(t *testing.T) { summary.upgrade(t, k.with(t)) })
	t.Run("helm-test-after-upgrade", func(t *testing.T) {
		out := k.with(t).mustHelm("test", "taskevents", "--logs", "--timeout", "3m")
		if !strings.Contains(out, "PASS") {
			t.Fatalf("helm test:\n%s", out)
		}
	})
	// helm uninstall leaves test hook pods (they are not part of the release); so does
	// every chart whose test pod keeps its logs for `helm test --logs`.
	k.mustKubectl("delete", "pod", "-l", "app.kubernetes.io/instance=taskevents,app.kubernetes.io/component=test")
	k.uninstall(t)
	t.Run("troubleshooting", func(t *testing.T) { summary.troubleshooting(t, k.with(t)) })
	t.Run("ci-values", func(t *testing.T) { summary.ciValues(t, k.with(t)) })

	closed = true
	if err := c.Close(); err != nil {
		t.Errorf("cluster teardown: %v", err)
	}
	left, err := c.Leftovers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range left {
		t.Errorf("left behind: %s", l)
	}
	summary.leftovers = len(left)
	t.Logf("cluster: whole test took %s", time.Since(start).Round(time.Second))
	fmt.Println(summary.String())
}

// waitForInjection waits until the sidecar injector injects daprd. The injector turns
// Ready once it has patched its webhook's CA bundle, but the API server can call the
// webhook a moment later still, and the webhook's failurePolicy is Ignore: a pod created
// in that window starts without daprd and never becomes Ready (seen here in a fresh run).
// A server-side dry run goes through the webhook and creates nothing.
func (k *kube) waitForInjection(t *testing.T) {
	probe := filepath.Join(t.TempDir(), "inject-probe.json")
	pod := `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"inject-probe","namespace":"default",` +
		`"annotations":{"dapr.io/enabled":"true","dapr.io/app-id":"inject-probe"}},` +
		`"spec":{"containers":[{"name":"app","image":"inject-probe"}]}}`
	if err := os.WriteFile(probe, []byte(pod), 0o600); err != nil {
		t.Fatal(err)
	}
	took := suite.WaitFor(t, "the sidecar injector to inject daprd into a dry-run pod", 3*time.Minute, 500*time.Millisecond,
		func() (bool, string) {
			out, err := k.kubectl("create", "--dry-run=server", "-o", "jsonpath={.spec.containers[*].name}", "-f", probe)
			return err == nil && slices.Contains(strings.Fields(out), "daprd"), fmt.Sprintf("containers %q, %v", out, err)
		})
	t.Logf("cluster: the sidecar injector injects daprd (dry run) %.1f s after Dapr's chart was Ready", took.Seconds())
}
