package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/taskevents/taskevents/e2e/internal/suite"
	"github.com/taskevents/taskevents/tools/harness"
)

// clusterSummary collects the figures of TestCluster's one-line report.
type clusterSummary struct {
	podsReady, podsTotal, injected int
	eventHandled, helmTest         bool
	reloadSeconds                  float64
	upgradeAccepted, upgradeLost   int
	leftovers                      int
	// outsideRefused counts the worker pods whose event port and daprd API refused a
	// connection from outside the pod while the ops port answered.
	outsideRefused int
}

func (s *clusterSummary) String() string {
	yes := func(b bool, y, n string) string {
		if b {
			return y
		}
		return n
	}
	return fmt.Sprintf("cluster: pods_ready=%d/%d sidecars_injected=%d outside_refused=%d event_handled=%s helm_test=%s subscription_reload_s=%.1f upgrade_accepted=%d upgrade_lost=%d leftovers=%d",
		s.podsReady, s.podsTotal, s.injected, s.outsideRefused, yes(s.eventHandled, "yes", "no"), yes(s.helmTest, "passed", "failed"),
		s.reloadSeconds, s.upgradeAccepted, s.upgradeLost, s.leftovers)
}

// install is the README's path: the GitOps bases, `helm install` with default values, every
// pod 2/2 with the injected daprd, the README's curl through a port-forward, the worker's log
// line for that task, and `helm test`.
func (s *clusterSummary) install(t *testing.T, k *kube) {
	k.mustKubectl("apply", "-k", "components/")
	k.mustKubectl("apply", "-k", "subscriptions/")
	k.mustHelm("install", "taskevents", "charts/taskevents")
	for _, d := range []string{"taskevents-publisher", "taskevents-worker"} {
		k.mustRollout("deployment/" + d)
	}
	l := k.pods(appLabel)
	s.podsReady, s.injected, s.podsTotal = l.readyPods()
	if s.podsReady != s.podsTotal || s.injected != s.podsTotal || s.podsTotal == 0 {
		t.Fatalf("pods: %d of %d ready, %d with an injected daprd", s.podsReady, s.podsTotal, s.injected)
	}
	t.Logf("kubectl get pods:\n%s", k.mustKubectl("get", "pods", "-l", appLabel))
	checkContainerSecurity(t, k, l)
	s.outsideRefused = checkWorkerReachability(t, k)

	pf := k.portForward(t, "service/taskevents-publisher", 80)
	c, r, err := createTaskAt(context.Background(), pf, "Learn Dapr pub/sub")
	if err != nil || r.Status != http.StatusAccepted {
		t.Fatalf("the README's curl through kubectl port-forward: %d %s (%v), want 202", r.Status, r.Body, err)
	}
	t.Logf("curl -X POST localhost/tasks → %d %s", r.Status, strings.TrimSpace(string(r.Body)))
	suite.WaitFor(t, "the worker's EVENT RECEIVED line for "+c.ID, 60*time.Second, time.Second, func() (bool, string) {
		out, _ := k.kubectl("logs", "-l", workerLabel, "-c", "worker", "--tail=-1", "--prefix")
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, `"EVENT RECEIVED"`) && strings.Contains(line, c.ID) {
				t.Logf("kubectl logs: %s", line)
				return true, ""
			}
		}
		return false, "no line yet"
	})
	s.eventHandled = true

	out := k.mustHelm("test", "taskevents", "--logs", "--timeout", "3m")
	if !strings.Contains(out, "PASS: the worker handled the task") {
		t.Fatalf("helm test passed without the test pod's PASS line:\n%s", out)
	}
	t.Logf("helm test:\n%s", out)
	s.helmTest = true
}

// checkWorkerReachability connects from the node, which is outside every pod, to each worker
// pod's IP: the event port (where an event could be injected past the broker) and daprd's API
// must refuse the connection, and the ops port must serve /readyz. Through kubectl
// port-forward, which enters the pod's own network namespace, the event port's dead-letter
// admin answers: that is the operator's way in.
func checkWorkerReachability(t *testing.T, k *kube) int {
	t.Helper()
	refused := 0
	for _, p := range k.pods(workerLabel).Items {
		ip := p.Status.PodIP
		ports := map[string]int{}
		for _, c := range p.Spec.Containers {
			if c.Name == "worker" && len(c.Ports) == 2 {
				ports["events"], ports["ops"] = c.Ports[0].ContainerPort, c.Ports[1].ContainerPort
			}
		}
		if ip == "" || ports["events"] == 0 {
			t.Fatalf("pod %s: no IP or no event and ops ports (%q, %v)", p.Metadata.Name, ip, ports)
		}
		ok := true
		for what, port := range map[string]int{"the worker's event port": ports["events"], "daprd's HTTP API": 3500} {
			conn, err := net.DialTimeout("tcp", net.JoinHostPort(ip, strconv.Itoa(port)), 3*time.Second)
			if err == nil {
				_ = conn.Close()
				t.Errorf("pod %s: %s (%s:%d) accepts connections from outside the pod", p.Metadata.Name, what, ip, port)
				ok = false
			} else if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("pod %s: %s (%s:%d): %v, want connection refused", p.Metadata.Name, what, ip, port, err)
				ok = false
			}
		}
		resp, err := suite.Client.Get(fmt.Sprintf("http://%s/readyz", net.JoinHostPort(ip, strconv.Itoa(ports["ops"]))))
		if err != nil {
			t.Errorf("pod %s: the ops port does not answer from outside the pod: %v", p.Metadata.Name, err)
			ok = false
		} else {
			_ = resp.Body.Close()
		}
		if ok {
			refused++
		}
	}
	pf := k.portForward(t, "deployment/taskevents-worker", 8001)
	resp, err := suite.Client.Get(pf + "/admin/deadletters")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("GET /admin/deadletters through kubectl port-forward: %v %v, want 200", resp, err)
	}
	if resp != nil {
		_ = resp.Body.Close()
	}
	t.Logf("outside the pod: event port and daprd API refused on %d worker pods; ops port answers; admin reachable through port-forward", refused)
	return refused
}

// checkContainerSecurity reads the running processes on the node: each app runs as
// 65532:65532 on a read-only root filesystem, and the port the sidecar was told
// (dapr.io/app-port) is the one the container exposes.
func checkContainerSecurity(t *testing.T, k *kube, l podList) {
	t.Helper()
	for _, p := range l.Items {
		for _, cs := range p.Status.ContainerStatuses {
			if cs.Name == "daprd" {
				continue
			}
			pid, err := k.c.ContainerPID(t.Context(), "default", p.Metadata.Name, cs.Name)
			if err != nil {
				t.Fatal(err)
			}
			status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range strings.Split(string(status), "\n") {
				if strings.HasPrefix(line, "Uid:") || strings.HasPrefix(line, "Gid:") {
					if f := strings.Fields(line); len(f) < 2 || f[1] != "65532" {
						t.Errorf("%s/%s runs with %s, want 65532", p.Metadata.Name, cs.Name, line)
					}
				}
			}
			mounts, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
			if err != nil {
				t.Fatal(err)
			}
			rootRO, tmpRW := false, false
			for _, line := range strings.Split(string(mounts), "\n") {
				f := strings.Fields(line)
				if len(f) < 6 {
					continue
				}
				opts := "," + f[5] + ","
				switch f[4] {
				case "/":
					rootRO = strings.Contains(opts, ",ro,")
				case "/tmp":
					tmpRW = strings.Contains(opts, ",rw,")
				}
			}
			if !rootRO || !tmpRW {
				t.Errorf("%s/%s: root read-only %v, /tmp writable %v; want both", p.Metadata.Name, cs.Name, rootRO, tmpRW)
			}
		}
	}
}

// portForward runs `kubectl port-forward target :remote` and returns the local base URL.
func (k *kube) portForward(t *testing.T, target string, remote int, ns ...string) string {
	t.Helper()
	args := []string{"--kubeconfig", k.c.Kubeconfig, "port-forward", target, fmt.Sprintf(":%d", remote)}
	if len(ns) > 0 {
		args = append(args, "-n", ns[0])
	}
	p, err := harness.StartProcess("port-forward "+target, io.Discard, k.env(), suite.Root, filepath.Join(k.c.KubeDir(), "kubectl"), args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(5 * time.Second) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	line, err := p.WaitForLine(ctx, func(l string) bool { return strings.HasPrefix(l, "Forwarding from 127.0.0.1:") })
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.Fields(strings.TrimPrefix(line, "Forwarding from "))[0]
	return "http://" + addr
}

// createTaskAt is the README's curl against a publisher at base.
func createTaskAt(ctx context.Context, base, title string) (suite.Created, suite.Reply, error) {
	return suite.CreateTask(ctx, &harness.App{URL: base}, title)
}

// subscriptionReload is the GitOps change: a new rule to a new path in the Subscription,
// applied with `kubectl apply -k`, reaches the running worker's sidecar through the Dapr
// operator, with no pod restarted.
func (s *clusterSummary) subscriptionReload(t *testing.T, k *kube) {
	before := k.pods(workerLabel).live()
	pod := before.Items[0].Metadata.Name
	sidecar := k.portForward(t, "pod/"+pod, 3500)
	m, _, err := suite.GetMetadata(t.Context(), sidecar)
	if err != nil {
		t.Fatal(err)
	}
	// The port daprd calls is the annotation's, and the one the worker container exposes.
	p0 := before.Items[0]
	containerPort := before.containerPort(0, "worker")
	if !m.HasRulePath(suite.Contract.Topic, suite.Contract.Route) || m.AppConnectionProperties.Port != containerPort ||
		p0.Metadata.Annotations["dapr.io/app-port"] != fmt.Sprint(containerPort) {
		t.Fatalf("the worker's sidecar: %+v; want the declarative task-events subscription and app port %d (annotation %q)",
			m, containerPort, p0.Metadata.Annotations["dapr.io/app-port"])
	}
	for _, sub := range m.Subscriptions {
		if sub.Type != "DECLARATIVE" {
			t.Errorf("subscription %s is %s, want DECLARATIVE (delivered by the operator)", sub.Topic, sub.Type)
		}
	}

	// The change a GitOps repository would carry: a copy of subscriptions/ with one more rule.
	overlay := t.TempDir()
	for _, f := range []string{"kustomization.yaml", "task-events.yaml", "task-events-deadletter.yaml"} {
		b, err := os.ReadFile(filepath.Join(suite.Root, "subscriptions", f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "task-events.yaml" {
			old := "    rules:\n"
			if !strings.Contains(string(b), old) {
				t.Fatal("subscriptions/task-events.yaml has no rules: list to extend")
			}
			b = []byte(strings.Replace(string(b), old, old+
				"      - match: event.type == \"task.created\" && event.data.title.startsWith(\"urgent\")\n"+
				"        path: /events/urgent\n", 1))
		}
		if err := os.WriteFile(filepath.Join(overlay, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	applied := time.Now()
	k.mustKubectl("apply", "-k", overlay)
	suite.WaitFor(t, "the new rule in the running sidecar's metadata", 90*time.Second, 100*time.Millisecond, func() (bool, string) {
		m, _, err := suite.GetMetadata(t.Context(), sidecar)
		return err == nil && m.HasRulePath(suite.Contract.Topic, "/events/urgent"), fmt.Sprint(err)
	})
	s.reloadSeconds = time.Since(applied).Seconds()
	t.Logf("subscription change reached the running sidecar %.1f s after kubectl apply", s.reloadSeconds)

	k.mustKubectl("apply", "-k", "subscriptions/")
	suite.WaitFor(t, "the rule to leave again", 90*time.Second, 100*time.Millisecond, func() (bool, string) {
		m, _, err := suite.GetMetadata(t.Context(), sidecar)
		return err == nil && !m.HasRulePath(suite.Contract.Topic, "/events/urgent"), fmt.Sprint(err)
	})
	after := k.pods(workerLabel).live()
	if len(after.Items) != len(before.Items) {
		t.Fatalf("worker pods changed from %d to %d", len(before.Items), len(after.Items))
	}
	for i, p := range after.Items {
		if p.Metadata.UID != before.Items[i].Metadata.UID {
			t.Errorf("worker pod %s was replaced", before.Items[i].Metadata.Name)
		}
		// A container that crashed at start, before the change, and recovered is not the
		// reload's doing (daprd can exit once while a fresh control plane warms up); it is
		// logged with its last lines. Any restart during the reload fails.
		was := map[string]int{}
		for _, cs := range before.Items[i].Status.ContainerStatuses {
			was[cs.Name] = cs.RestartCount
			if cs.RestartCount != 0 {
				prev, _ := k.kubectl("logs", "--previous", "--tail=15", p.Metadata.Name, "-c", cs.Name)
				t.Logf("%s/%s had restarted %d times before the change; its last lines before that:\n%s",
					p.Metadata.Name, cs.Name, cs.RestartCount, prev)
			}
		}
		for _, cs := range p.Status.ContainerStatuses {
			if cs.RestartCount != was[cs.Name] {
				t.Errorf("%s/%s restarted during the reload (%d times before it, %d after)",
					p.Metadata.Name, cs.Name, was[cs.Name], cs.RestartCount)
			}
		}
	}
}

// upgrade publishes continuously through the publisher's Service while `helm upgrade` with a
// changed value rolls both Deployments, then requires every accepted task to be handled.
func (s *clusterSummary) upgrade(t *testing.T, k *kube) {
	before := map[string]bool{}
	for _, p := range k.pods(appLabel).Items {
		before[p.Metadata.UID] = true
	}
	ip := strings.TrimSpace(k.mustKubectl("get", "service", "taskevents-publisher", "-o", "jsonpath={.spec.clusterIP}"))
	base := "http://" + ip + ":80"
	logs := followLogs(t, k, "default", workerLabel, "worker")

	var mu sync.Mutex
	accepted := map[string]bool{}
	refused := map[string]int{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				c, r, err := createTaskAt(ctx, base, fmt.Sprintf("upgrade %d-%d", w, n))
				cancel()
				mu.Lock()
				switch {
				case err == nil && r.Status == http.StatusAccepted:
					accepted[c.ID] = true
				case err != nil:
					refused["error"]++
				default:
					refused[fmt.Sprint(r.Status)]++
				}
				mu.Unlock()
				if err != nil || r.Status != http.StatusAccepted {
					time.Sleep(100 * time.Millisecond) // a refused client backs off a little
				}
			}
		}()
	}
	acceptedSoFar := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(accepted)
	}
	// Steady traffic before the rollout starts, and after it ends, on the new pods.
	suite.WaitFor(t, "publishes accepted before the upgrade", 30*time.Second, 50*time.Millisecond, func() (bool, string) {
		return acceptedSoFar() >= 200, fmt.Sprint(acceptedSoFar())
	})
	k.mustHelm("upgrade", "taskevents", "charts/taskevents", "--set", "publisher.logLevel=debug",
		"--set-string", "worker.env.HANDLER_TIMEOUT=4s", "--wait", "--timeout", "5m")
	afterRollout := acceptedSoFar()
	suite.WaitFor(t, "publishes accepted after the upgrade", 30*time.Second, 50*time.Millisecond, func() (bool, string) {
		return acceptedSoFar() >= afterRollout+200, fmt.Sprint(acceptedSoFar() - afterRollout)
	})
	close(stop)
	wg.Wait()

	// Replaced: every pod of the old revision is gone or on its way out (draining).
	suite.WaitFor(t, "every pod replaced by the upgrade", 2*time.Minute, time.Second, func() (bool, string) {
		var old []string
		for _, p := range k.pods(appLabel).Items {
			if before[p.Metadata.UID] && p.Metadata.DeletionTimestamp == "" {
				old = append(old, p.Metadata.Name)
			}
		}
		return len(old) == 0, fmt.Sprintf("still there: %v", old)
	})
	s.upgradeAccepted = len(accepted)
	if s.upgradeAccepted == 0 {
		t.Fatalf("no publish was accepted during the upgrade (refused: %v)", refused)
	}
	// A worker stopped mid-delivery leaves its entry pending; Redis hands it to another
	// consumer after processingTimeout (60 s), so allow for one redelivery round.
	var missing []string
	suite.WaitFor(t, "every accepted task handled", 150*time.Second, time.Second, func() (bool, string) {
		seen := logs.handled()
		missing = missing[:0]
		for id := range accepted {
			if !seen[id] {
				missing = append(missing, id)
			}
		}
		return len(missing) == 0, fmt.Sprintf("%d of %d not handled yet", len(missing), len(accepted))
	})
	s.upgradeLost = len(missing)
	t.Logf("upgrade: accepted=%d refused=%v lost=%d", len(accepted), refused, len(missing))
}

// logFollower streams `kubectl logs -f` of every pod that matches a selector, including
// pods created while it runs, so that lines of pods a rollout deletes are kept.
type logFollower struct {
	mu    sync.Mutex
	procs map[string]*harness.Process
}

func followLogs(t *testing.T, k *kube, ns, selector, container string) *logFollower {
	f := &logFollower{procs: map[string]*harness.Process{}}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			out, err := k.kubectl("-n", ns, "get", "pods", "-l", selector, "-o", "jsonpath={range .items[*]}{.metadata.name} {.status.phase}{\"\\n\"}{end}")
			if err == nil {
				sc := bufio.NewScanner(strings.NewReader(out))
				for sc.Scan() {
					fields := strings.Fields(sc.Text())
					if len(fields) != 2 || fields[1] != "Running" {
						continue
					}
					f.mu.Lock()
					if _, ok := f.procs[fields[0]]; !ok {
						p, err := harness.StartProcess("logs "+fields[0], io.Discard, k.env(), suite.Root,
							filepath.Join(k.c.KubeDir(), "kubectl"), "-n", ns, "logs", "-f", "pod/"+fields[0], "-c", container)
						if err == nil {
							f.procs[fields[0]] = p
						}
					}
					f.mu.Unlock()
				}
			}
			select {
			case <-done:
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() {
		close(done)
		<-stopped
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, p := range f.procs {
			_ = p.Stop(5 * time.Second)
		}
	})
	return f
}

// handled is the set of task ids some worker logged as EVENT RECEIVED.
func (f *logFollower) handled() map[string]bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	seen := map[string]bool{}
	for _, p := range f.procs {
		for _, e := range harness.Events(p.Lines(), "EVENT RECEIVED") {
			seen[e.TaskID] = true
		}
	}
	return seen
}

// mustRollout waits for a rollout to finish; when it does not, the test fails with what a
// person would look at next: the pods, their events and the last lines of every container.
func (k *kube) mustRollout(what string) {
	k.t.Helper()
	kubectl := filepath.Join(k.c.KubeDir(), "kubectl")
	// kubectl's own timeout below the process's, so that kubectl reports, not a kill. Six
	// minutes outlast a few rounds of the kubelet's crash back-off (10 s, doubling): twice,
	// pods were not available after 4 min (cause not captured), and a container that crashes
	// at start and then recovers is a pass for a user too; one that never recovers still fails.
	_, err := k.run(7*time.Minute, kubectl, "rollout", "status", what, "--timeout=6m")
	if err == nil {
		return
	}
	pods, _ := k.kubectl("get", "pods", "-A", "-o", "wide")
	described, _ := k.kubectl("describe", "pods", "-l", appLabel)
	logs, _ := k.kubectl("logs", "-l", appLabel, "--all-containers", "--prefix", "--tail", "20")
	if lines := strings.Split(described, "\n"); len(lines) > 150 {
		described = strings.Join(lines[len(lines)-150:], "\n")
	}
	warnings, _ := k.kubectl("get", "events", "-A", "--field-selector", "type=Warning", "--sort-by=.lastTimestamp")
	if lines := strings.Split(strings.TrimSpace(warnings), "\n"); len(lines) > 25 {
		warnings = strings.Join(lines[len(lines)-25:], "\n")
	}
	sidecars, _ := k.kubectl("logs", "-l", appLabel, "-c", "daprd", "--prefix", "--tail", "4")
	if k.verdict != nil && *k.verdict == "" {
		*k.verdict = fmt.Sprintf("%s did not finish: %v\npods:\n%s\ndaprd's last lines:\n%s\nwarning events, newest last:\n%s",
			what, err, pods, sidecars, warnings)
	}
	k.t.Fatalf("%v\npods:\n%s\ndescribe (last 150 lines):\n%s\nlogs:\n%s", err, pods, described, logs)
}
