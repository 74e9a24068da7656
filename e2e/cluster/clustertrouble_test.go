package cluster

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/taskevents/taskevents/e2e/internal/helmchart"
	"github.com/taskevents/taskevents/e2e/internal/suite"
	"github.com/taskevents/taskevents/tools/harness"
)

// troubleshooting reproduces the README's Troubleshooting rows that a cluster can show, in a namespace
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
	took := suite.WaitFor(t, "POST /tasks to be accepted after the Component was applied", 90*time.Second, 500*time.Millisecond, func() (bool, string) {
		c, r, err := createTaskAt(context.Background(), publisher, "after the component")
		id = c.ID
		return err == nil && r.Status == http.StatusAccepted, fmt.Sprintf("%d %s %v", r.Status, r.Body, err)
	})
	t.Logf("component applied after the pods: publishing works %.1f s later, no restart", took.Seconds())
	worker := "app.kubernetes.io/instance=late,app.kubernetes.io/component=worker"
	logs := followLogs(t, k, ns, worker, "worker")
	suite.WaitFor(t, "the late worker to handle "+id, 90*time.Second, time.Second, func() (bool, string) {
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
	good := k.pods(worker, "-n", ns).Items[0]
	oldWorker, port := good.Metadata.UID, good.Metadata.Annotations["dapr.io/app-port"]
	const wrong = "9999"
	k.mustKubectl("-n", ns, "patch", deploy, "--type", "merge", "-p",
		`{"spec":{"strategy":{"type":"Recreate","rollingUpdate":null},"template":{"metadata":{"annotations":{"dapr.io/app-port":"`+wrong+`"}}}}}`)
	var bad string
	suite.WaitFor(t, "the mismatched worker pod to run", 90*time.Second, time.Second, func() (bool, string) {
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
	suite.WaitFor(t, "daprd to say it waits for the app on "+wrong, 60*time.Second, time.Second, func() (bool, string) {
		out, _ := k.kubectl("-n", ns, "logs", "pod/"+bad, "-c", "daprd")
		return strings.Contains(out, "waiting for application to listen on port "+wrong), "not yet"
	})
	l := k.pods(worker, "-n", ns)
	if ready, _, total := l.readyPods(); ready != 0 || total != 1 {
		t.Fatalf("with the wrong app-port: %d of %d worker pods ready, want 0 of 1 (READY 1/2)", ready, total)
	}
	if logs.handled()[c.ID] {
		t.Fatal("the worker handled an event although its sidecar has no app channel")
	}
	t.Logf("app-port mismatch: pod %s READY 1/2, daprd logs \"waiting for application to listen on port %s\"; the event waits", bad, wrong)
	k.mustKubectl("-n", ns, "patch", deploy, "--type", "merge", "-p",
		`{"spec":{"template":{"metadata":{"annotations":{"dapr.io/app-port":"`+port+`"}}}}}`)
	k.mustKubectl("-n", ns, "rollout", "status", deploy, "--timeout=3m")
	suite.WaitFor(t, "the event published while the port was wrong to be handled after the fix", 90*time.Second, time.Second, func() (bool, string) {
		return logs.handled()[c.ID], "not yet"
	})
	k.mustHelm("uninstall", "late", "-n", ns, "--wait")
	k.mustKubectl("delete", "namespace", ns, "--timeout=2m")
}

// ciValues installs the chart with each ci/*-values.yaml whose dependencies a single node
// can give it and waits until every pod is Ready; with tokens on, it checks that a wrong
// token is refused on both hops.
func (s *clusterSummary) ciValues(t *testing.T, k *kube) {
	// The ServiceMonitor and PrometheusRule CRDs, as prometheus-operator ships them, for
	// ha-values' serviceMonitor and monitoring.prometheusRule.
	crds := filepath.Join(helmchart.ModuleDir(t, os.TempDir(), helmchart.PrometheusOperatorModule), "example", "prometheus-operator-crd")
	for _, kind := range []string{"servicemonitors", "prometheusrules"} {
		k.mustKubectl("apply", "--server-side", "-f", filepath.Join(crds, "monitoring.coreos.com_"+kind+".yaml"))
		k.mustKubectl("wait", "--for=condition=Established", "crd/"+kind+".monitoring.coreos.com", "--timeout=60s")
	}
	// Both tokens of tokens-values come from existing Secrets, as its comment says.
	k.mustKubectl("create", "secret", "generic", "dapr-api-token", "--from-literal=token=ci-api-token-0123456789")
	k.mustKubectl("create", "secret", "generic", "dapr-app-token", "--from-literal=token=ci-app-token-0123456789")

	for _, name := range []string{"default", "ha", "tokens", "kafka", "rabbitmq"} {
		t.Run(name, func(t *testing.T) {
			k := k.with(t)
			switch name {
			case "ha":
				// ha-values renders the tracing Configuration from the chart: the GitOps
				// base's copy of it (same name) goes, or Helm refuses to adopt it. The
				// README says to use one or the other.
				k.mustKubectl("delete", "configurations.dapr.io", "taskevents-tracing", "--ignore-not-found")
			case "kafka":
				k.gitopsOff(t)
				k.kafkaForValues(t)
			case "rabbitmq":
				k.gitopsOff(t)
				k.rabbitmqForValues(t)
			}
			values := filepath.Join("charts", "taskevents", "ci", name+"-values.yaml")
			k.mustHelm("install", "taskevents", "charts/taskevents", "-f", values, "--wait", "--timeout", "5m")
			defer k.uninstall(t)
			suite.WaitFor(t, name+": every pod 2/2", 3*time.Minute, 2*time.Second, func() (bool, string) {
				ready, injected, total := k.pods(appLabel).readyPods()
				return total > 0 && ready == total && injected == total, fmt.Sprintf("%d/%d ready, %d injected", ready, total, injected)
			})
			_, _, total := k.pods(appLabel).readyPods()
			t.Logf("%s-values: %d pods Ready 2/2", name, total)
			switch name {
			case "ha":
				checkTracingWired(t, k)
			case "tokens":
				checkTokens(t, k)
			case "kafka", "rabbitmq":
				checkFlow(t, k)
			}
		})
	}
}

// checkTokens proves both tokens are enforced in the cluster: the worker refuses a delivery
// without daprd's app token, daprd refuses a publish with a wrong API token, and the real
// flow, which carries both, still works.
func checkTokens(t *testing.T, k *kube) {
	workers := k.pods(workerLabel).live()
	worker := k.portForward(t, "pod/"+workers.Items[0].Metadata.Name, workers.containerPort(0, "worker"))
	r, err := suite.Post(context.Background(), worker+suite.Contract.Route, "application/cloudevents+json", `{}`,
		map[string]string{"dapr-api-token": "wrong"})
	if err != nil || r.Status != http.StatusUnauthorized {
		t.Errorf("worker /events/todo with a wrong app token: %d %s (%v), want 401", r.Status, r.Body, err)
	}
	publishers := k.pods(publisherLabel).live()
	sidecar := k.portForward(t, "pod/"+publishers.Items[0].Metadata.Name, 3500)
	r, err = suite.Post(context.Background(), sidecar+"/v1.0/publish/pubsub/task-events", "application/json", `{}`,
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
	suite.WaitFor(t, "the worker to handle a task with tokens on", 60*time.Second, time.Second, func() (bool, string) {
		return logs.handled()[c.ID], "not yet"
	})
}

// gitopsOff deletes what `kubectl apply -k components/ subscriptions/` made: the kafka and
// rabbitmq values render their own Component and Subscriptions, under the same names.
func (k *kube) gitopsOff(t *testing.T) {
	t.Helper()
	for _, base := range []string{"subscriptions/", "components/"} {
		k.mustKubectl("delete", "-k", base, "--ignore-not-found")
	}
}

// kafkaForValues runs Apache Kafka on the node with the SASL_PLAINTEXT SCRAM-SHA-512 client
// listener kafka-values expects on port 9092, and gives it the names that file uses:
// kafka-0 and kafka-1.kafka-headless.kafka.svc, a headless Service whose EndpointSlice
// points at the node, and the Secret kafka-user-taskevents.
func (k *kube) kafkaForValues(t *testing.T) {
	t.Helper()
	addr := net.JoinHostPort(k.c.NodeIP, "9092")
	if l, err := net.Listen("tcp", addr); err != nil {
		t.Fatalf("kafka-values names port 9092; %s is taken: %v", addr, err)
	} else {
		_ = l.Close()
	}
	password := "kafka-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := k.h.StartKafkaSASL(ctx, harness.KafkaSASL{Addr: addr, Username: "taskevents", Password: password}); err != nil {
		t.Fatal(err)
	}
	manifest := fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: kafka}
---
apiVersion: v1
kind: Service
metadata: {name: kafka-headless, namespace: kafka}
spec:
  clusterIP: None
  ports: [{name: tcp-client, port: 9092, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kafka-headless-node
  namespace: kafka
  labels: {kubernetes.io/service-name: kafka-headless}
addressType: IPv4
ports: [{name: tcp-client, port: 9092, protocol: TCP}]
endpoints:
  - {addresses: [%[1]q], hostname: kafka-0, conditions: {ready: true}}
  - {addresses: [%[1]q], hostname: kafka-1, conditions: {ready: true}}
`, k.c.NodeIP)
	k.applyYAML("kafka.yaml", manifest)
	k.mustKubectl("create", "secret", "generic", "kafka-user-taskevents", "--from-literal=password="+password)
}

// rabbitmqForValues runs RabbitMQ on the node with a user of its own, puts its URL in the
// Secret rabbitmq-values names, and applies the tracing Configuration the sidecars name.
func (k *kube) rabbitmqForValues(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, err := k.h.StartRabbitMQOn(ctx, k.c.NodeIP, "taskevents", "rabbit-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	if err != nil {
		t.Fatal(err)
	}
	k.mustKubectl("create", "secret", "generic", "rabbitmq-taskevents", "--from-literal=url="+b.Overrides["connectionString"])
	config := `apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata: {name: tracing}
spec:
  tracing:
    samplingRate: "1"
    stdout: true
`
	k.applyYAML("tracing.yaml", config)
}

// checkFlow is the README's curl through a port-forward, handled by a worker.
func checkFlow(t *testing.T, k *kube) {
	t.Helper()
	publisher := k.portForward(t, "service/taskevents-publisher", 80)
	logs := followLogs(t, k, "default", workerLabel, "worker")
	c, r, err := createTaskAt(context.Background(), publisher, "through the chart's Component")
	if err != nil || r.Status != http.StatusAccepted {
		t.Fatalf("POST /tasks: %d %s (%v)", r.Status, r.Body, err)
	}
	suite.WaitFor(t, "the worker to handle the task", 90*time.Second, time.Second, func() (bool, string) {
		return logs.handled()[c.ID], "not yet"
	})
}

// checkTracingWired: with tracing.enabled, every pod names the release's Configuration in
// dapr.io/config, and its daprd runs with it (a sidecar without its Configuration exits at
// start: the pod is Ready, so each daprd found it). It logs how often daprd restarted, which
// says whether one started before Helm created the Configuration.
func checkTracingWired(t *testing.T, k *kube) {
	t.Helper()
	out := k.mustKubectl("get", "configurations.dapr.io", "taskevents-tracing", "-o", "jsonpath={.spec.tracing.samplingRate}")
	if out != "0.1" {
		t.Errorf("Configuration taskevents-tracing has samplingRate %q, want 0.1", out)
	}
	restarts := 0
	for _, p := range k.pods(appLabel).Items {
		if p.Metadata.DeletionTimestamp != "" {
			continue // the previous release's, draining
		}
		if got := p.Metadata.Annotations["dapr.io/config"]; got != "taskevents-tracing" {
			t.Errorf("pod %s: dapr.io/config = %q, want taskevents-tracing", p.Metadata.Name, got)
		}
		for _, c := range p.Status.ContainerStatuses {
			if c.Name == "daprd" {
				restarts += c.RestartCount
			}
		}
	}
	t.Logf("ha-values: every pod's daprd runs with Configuration taskevents-tracing; daprd restarts: %d", restarts)
}
