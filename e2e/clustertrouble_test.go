package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// troubleshooting reproduces the seed lesson's rows that a cluster can show, in a namespace
// of their own, and checks the README's answers against them:
//   - the Component applied after the pods: POST /tasks answers 502 ERR_PUBSUB_NOT_FOUND, and
//     once `kubectl apply -k components/` lands, publishing and delivery work with no restart;
//   - dapr.io/app-port not matching the container: the worker's daprd waits for the app,
//     the pod stays 1/2 and events wait in the broker, until the port is fixed.
func (s *clusterSummary) troubleshooting(t *testing.T, k *kube) {
	const ns = "late"
	k.mustKubectl("create", "namespace", ns)
	k.mustKubectl("apply", "-k", "subscriptions/", "-n", ns)
	k.mustHelm("install", "late", "charts/taskevents", "-n", ns,
		"--set", "publisher.replicaCount=1", "--set", "worker.replicaCount=1")
	for _, d := range []string{"late-taskevents-publisher", "late-taskevents-worker"} {
		k.mustKubectl("-n", ns, "rollout", "status", "deployment/"+d, "--timeout=4m")
	}
	before := k.pods("app.kubernetes.io/instance=late", "-n", ns)
	publisher := k.portForward(t, "service/late-taskevents-publisher", 80, ns)
	_, r, err := createTaskAt(context.Background(), publisher, "before the component")
	if err != nil || r.Status != http.StatusBadGateway || !strings.Contains(string(r.Body), "ERR_PUBSUB_NOT_FOUND") {
		t.Fatalf("POST /tasks with no Component: %d %s (%v); the README says 502 with ERR_PUBSUB_NOT_FOUND", r.Status, r.Body, err)
	}
	t.Logf("no Component yet: POST /tasks → %d %s", r.Status, strings.TrimSpace(string(r.Body)))

	applied := time.Now()
	k.mustKubectl("apply", "-k", "components/", "-n", ns)
	var id string
	took := waitFor(t, "POST /tasks to be accepted after the Component was applied", 90*time.Second, 500*time.Millisecond, func() (bool, string) {
		c, r, err := createTaskAt(context.Background(), publisher, "after the component")
		id = c.ID
		return err == nil && r.Status == http.StatusAccepted, fmt.Sprintf("%d %s %v", r.Status, r.Body, err)
	})
	t.Logf("component applied after the pods: publishing works %.1f s later, no restart", took.Seconds())
	worker := "app.kubernetes.io/instance=late,app.kubernetes.io/component=worker"
	logs := followLogs(t, k, ns, worker, "worker")
	took = waitFor(t, "the late worker to handle "+id, 90*time.Second, time.Second, func() (bool, string) {
		return logs.handled()[id], "not yet"
	})
	t.Logf("component applied after the pods: the worker handled the task %.1f s after the apply", time.Since(applied).Seconds())
	after := k.pods("app.kubernetes.io/instance=late", "-n", ns)
	for i, p := range after.Items {
		if p.Metadata.UID != before.Items[i].Metadata.UID {
			t.Errorf("pod %s was replaced", p.Metadata.Name)
		}
	}

	// The app-port mismatch: a Deployment whose dapr.io/app-port names a port the container
	// does not listen on. Recreate, so that the mismatched pod is the only worker.
	deploy := "deployment/late-taskevents-worker"
	oldWorker := k.pods(worker, "-n", ns).Items[0].Metadata.UID
	k.mustKubectl("-n", ns, "patch", deploy, "--type", "merge", "-p",
		`{"spec":{"strategy":{"type":"Recreate","rollingUpdate":null},"template":{"metadata":{"annotations":{"dapr.io/app-port":"8081"}}}}}`)
	var bad string
	waitFor(t, "the mismatched worker pod to run", 90*time.Second, time.Second, func() (bool, string) {
		l := k.pods(worker, "-n", ns)
		if len(l.Items) != 1 || l.Items[0].Metadata.UID == oldWorker || l.Items[0].Status.Phase != "Running" {
			return false, fmt.Sprintf("%d pods", len(l.Items))
		}
		bad = l.Items[0].Metadata.Name
		return true, ""
	})
	c, r, err := createTaskAt(context.Background(), publisher, "while the port is wrong")
	if err != nil || r.Status != http.StatusAccepted {
		t.Fatalf("POST /tasks: %d %s (%v)", r.Status, r.Body, err)
	}
	waitFor(t, "daprd to say it waits for the app on 8081", 60*time.Second, time.Second, func() (bool, string) {
		out, _ := k.kubectl("-n", ns, "logs", "pod/"+bad, "-c", "daprd")
		return strings.Contains(out, "waiting for application to listen on port 8081"), "not yet"
	})
	l := k.pods(worker, "-n", ns)
	if ready, _, total := l.readyPods(); ready != 0 || total != 1 {
		t.Fatalf("with the wrong app-port: %d of %d worker pods ready, want 0 of 1 (READY 1/2)", ready, total)
	}
	if logs.handled()[c.ID] {
		t.Fatal("the worker handled an event although its sidecar has no app channel")
	}
	t.Logf("app-port mismatch: pod %s READY 1/2, daprd logs \"waiting for application to listen on port 8081\"; the event waits", bad)
	k.mustKubectl("-n", ns, "patch", deploy, "--type", "merge", "-p",
		`{"spec":{"template":{"metadata":{"annotations":{"dapr.io/app-port":"8000"}}}}}`)
	k.mustKubectl("-n", ns, "rollout", "status", deploy, "--timeout=3m")
	waitFor(t, "the event published while the port was wrong to be handled after the fix", 90*time.Second, time.Second, func() (bool, string) {
		return logs.handled()[c.ID], "not yet"
	})
	k.mustHelm("uninstall", "late", "-n", ns, "--wait")
	k.mustKubectl("delete", "namespace", ns, "--timeout=2m")
}

// ciValues installs the chart with each ci/*-values.yaml whose dependencies a single node
// can give it and waits until every pod is Ready; with tokens on, it checks that a wrong
// token is refused on both hops.
func (s *clusterSummary) ciValues(t *testing.T, k *kube) {
	// The ServiceMonitor CRD, as prometheus-operator ships it, for ha-values' serviceMonitor.
	crd := filepath.Join(moduleDir(t, os.TempDir(), prometheusOperatorModule),
		"example", "prometheus-operator-crd", "monitoring.coreos.com_servicemonitors.yaml")
	k.mustKubectl("apply", "--server-side", "-f", crd)
	k.mustKubectl("wait", "--for=condition=Established", "crd/servicemonitors.monitoring.coreos.com", "--timeout=60s")
	// The API token of tokens-values comes from an existing Secret, as its comment says.
	k.mustKubectl("create", "secret", "generic", "dapr-api-token", "--from-literal=token=ci-api-token-0123456789")

	for _, name := range []string{"default", "ha", "tokens"} {
		t.Run(name, func(t *testing.T) {
			values := filepath.Join("charts", "taskevents", "ci", name+"-values.yaml")
			k.mustHelm("install", "taskevents", "charts/taskevents", "-f", values, "--wait", "--timeout", "5m")
			defer k.mustHelm("uninstall", "taskevents", "--wait", "--timeout", "3m")
			waitFor(t, name+": every pod 2/2", 3*time.Minute, 2*time.Second, func() (bool, string) {
				ready, injected, total := k.pods(appLabel).readyPods()
				return total > 0 && ready == total && injected == total, fmt.Sprintf("%d/%d ready, %d injected", ready, total, injected)
			})
			_, _, total := k.pods(appLabel).readyPods()
			t.Logf("%s-values: %d pods Ready 2/2", name, total)
			if name == "tokens" {
				checkTokens(t, k)
			}
		})
	}
}

// checkTokens proves both tokens are enforced in the cluster: the worker refuses a delivery
// without daprd's app token, daprd refuses a publish with a wrong API token, and the real
// flow, which carries both, still works.
func checkTokens(t *testing.T, k *kube) {
	workers := k.pods(workerLabel)
	worker := k.portForward(t, "pod/"+workers.Items[0].Metadata.Name, 8000)
	r, err := post(context.Background(), worker+"/events/todo", "application/cloudevents+json", `{}`,
		map[string]string{"dapr-api-token": "wrong"})
	if err != nil || r.Status != http.StatusUnauthorized {
		t.Errorf("worker /events/todo with a wrong app token: %d %s (%v), want 401", r.Status, r.Body, err)
	}
	publishers := k.pods(publisherLabel)
	sidecar := k.portForward(t, "pod/"+publishers.Items[0].Metadata.Name, 3500)
	r, err = post(context.Background(), sidecar+"/v1.0/publish/pubsub/task-events", "application/json", `{}`,
		map[string]string{"dapr-api-token": "wrong"})
	if err != nil || r.Status != http.StatusUnauthorized {
		t.Errorf("daprd publish with a wrong API token: %d %s (%v), want 401", r.Status, r.Body, err)
	}
	publisher := k.portForward(t, "service/taskevents-publisher", 80)
	logs := followLogs(t, k, "default", workerLabel, "worker")
	c, r, err := createTaskAt(context.Background(), publisher, "with both tokens")
	if err != nil || r.Status != http.StatusAccepted {
		t.Fatalf("POST /tasks with tokens on: %d %s (%v)", r.Status, r.Body, err)
	}
	waitFor(t, "the worker to handle a task with tokens on", 60*time.Second, time.Second, func() (bool, string) {
		return logs.handled()[c.ID], "not yet"
	})
}
