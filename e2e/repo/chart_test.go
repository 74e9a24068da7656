package repo

// The Helm chart (charts/taskevents), checked without a cluster: `helm lint --strict` and
// `helm template` for the defaults and every ci/*-values.yaml, the strict values schema, and
// the rendered objects against what the chart promises (annotations derived from one value,
// restricted pod security, tokens wired on both sides, no namespace, no latest tag).
// schema_test.go validates the same objects against the Kubernetes and Dapr schemas.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/taskevents/taskevents/e2e/internal/helmchart"
)

// chartValuesCases are the values permutations every chart test runs: the defaults and each
// ci/*-values.yaml (named by the file's stem).
func chartValuesCases(t *testing.T) map[string][]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(helmchart.Dir(), "ci", "*-values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]string{"no-values-file": nil}
	for _, f := range files {
		cases[strings.TrimSuffix(filepath.Base(f), "-values.yaml")] = []string{"-f", f}
	}
	for _, want := range []string{"default", "ha", "tokens", "kafka"} {
		if _, ok := cases[want]; !ok {
			t.Errorf("charts/taskevents/ci/%s-values.yaml is missing", want)
		}
	}
	return cases
}

func TestChartLint(t *testing.T) {
	helmchart.Helm(t)
	for name, args := range chartValuesCases(t) {
		t.Run(name, func(t *testing.T) {
			out, err := helmchart.RunHelm(t, append([]string{"lint", "--strict", "."}, args...)...)
			if err != nil || !strings.Contains(out, "0 chart(s) failed") {
				t.Fatalf("helm lint --strict %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			if strings.Contains(out, "[WARNING]") || strings.Contains(out, "[ERROR]") {
				t.Errorf("helm lint reports problems:\n%s", out)
			}
		})
	}
}

func TestChartTemplate(t *testing.T) {
	helmchart.Helm(t)
	for name, args := range chartValuesCases(t) {
		t.Run(name, func(t *testing.T) {
			objs := helmchart.Render(t, args...)
			checkRendered(t, objs)
			kinds := map[string]int{}
			for _, o := range objs {
				kinds[o.Kind()]++
			}
			// What each permutation exists to render.
			want := map[string]map[string]int{
				"default": {"Deployment": 2, "Service": 3, "ServiceAccount": 1, "Pod": 1, "Component": 0, "Subscription": 0,
					"Resiliency": 0, "Secret": 0, "HorizontalPodAutoscaler": 0, "PodDisruptionBudget": 0, "NetworkPolicy": 0},
				"ha": {"HorizontalPodAutoscaler": 2, "PodDisruptionBudget": 2, "NetworkPolicy": 2, "ServiceMonitor": 1},
				// tokens: both from existing Secrets, the GitOps-safe form.
				"tokens": {"Secret": 0},
				"kafka":  {"Component": 2, "Subscription": 2, "Resiliency": 1}, // the pub/sub and the state store
			}[name]
			for kind, n := range want {
				if kinds[kind] != n {
					t.Errorf("%d %s objects rendered, want %d (all: %v)", kinds[kind], kind, n, kinds)
				}
			}
			t.Logf("%s: %d objects %v", name, len(objs), kinds)
		})
	}
}

// checkRendered asserts what the chart promises of every rendering.
func checkRendered(t *testing.T, objs []helmchart.Object) {
	t.Helper()
	deployments := map[string]helmchart.Object{} // by app.kubernetes.io/component
	byKindName := map[string]helmchart.Object{}
	for _, o := range objs {
		byKindName[o.Kind()+"/"+o.Name()] = o
		if o.Name() == "" {
			t.Errorf("%s has no metadata.name", o)
		}
		if ns := helmchart.Dig(o, "metadata", "namespace"); ns != nil {
			t.Errorf("%s sets metadata.namespace %v; the release namespace must decide", o, ns)
		}
		for _, l := range []string{"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/managed-by", "helm.sh/chart"} {
			if helmchart.DigString(o, "metadata", "labels", l) == "" {
				t.Errorf("%s lacks the label %s", o, l)
			}
		}
		if o.Kind() == "Deployment" {
			deployments[helmchart.DigString(o, "metadata", "labels", "app.kubernetes.io/component")] = o
		}
	}
	if len(deployments) != 2 || deployments["publisher"] == nil || deployments["worker"] == nil {
		t.Fatalf("want one Deployment per app (publisher, worker), got %v", slices.Collect(maps.Keys(deployments)))
	}
	hpas := map[string]bool{}
	for _, o := range objs {
		if o.Kind() == "HorizontalPodAutoscaler" {
			hpas[helmchart.DigString(o, "spec", "scaleTargetRef", "name")] = true
		}
	}
	appIDs := map[string]string{}
	for component, d := range deployments {
		appIDs[component] = checkDeployment(t, component, d, hpas[d.Name()], byKindName)
	}
	checkServices(t, objs)
	pubsubName := helmchart.EnvValue(helmchart.Dig(deployments["publisher"], "spec", "template", "spec", "containers", "0"), "PUBSUB_NAME")
	for _, o := range objs {
		switch o.Kind() {
		case "Component":
			stateStore := helmchart.EnvValue(helmchart.Dig(deployments["worker"], "spec", "template", "spec", "containers", "0"), "DEDUPE_STORE")
			if o.Name() != pubsubName && o.Name() != stateStore {
				t.Errorf("Component %s: the publisher publishes to PUBSUB_NAME=%s and the worker keeps state in DEDUPE_STORE=%s",
					o.Name(), pubsubName, stateStore)
			}
			checkScopes(t, o, appIDs["publisher"], appIDs["worker"])
		case "Subscription":
			if got := helmchart.DigString(o, "spec", "pubsubname"); got != pubsubName {
				t.Errorf("%s: pubsubname %q, the publisher publishes to %q", o, got, pubsubName)
			}
			checkScopes(t, o, appIDs["worker"])
		case "Resiliency":
			if helmchart.Dig(o, "spec", "targets", "components", pubsubName, "inbound") == nil {
				t.Errorf("%s does not target components.%s.inbound", o, pubsubName)
			}
			checkScopes(t, o, appIDs["worker"])
		case "Pod":
			if helmchart.DigString(o, "metadata", "annotations", "helm.sh/hook") != "test" {
				t.Errorf("%s is not a helm test hook", o)
			}
			checkImage(t, o.String(), helmchart.DigString(o, "spec", "containers", "0", "image"))
			if helmchart.Dig(o, "spec", "automountServiceAccountToken") != false {
				t.Errorf("%s mounts a service account token", o)
			}
		case "Secret":
			if helmchart.DigString(o, "data", "token") == "" {
				t.Errorf("%s has no data.token, the only key the Dapr injector reads", o)
			}
		case "ServiceAccount":
			if helmchart.Dig(o, "automountServiceAccountToken") != false {
				t.Errorf("%s: automountServiceAccountToken must be false", o)
			}
		}
	}
}

func checkScopes(t *testing.T, o helmchart.Object, want ...string) {
	t.Helper()
	var got []string
	for _, s := range helmchart.AsList(o["scopes"]) {
		got = append(got, fmt.Sprint(s))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s: scopes %v, want the app-ids %v", o, got, want)
	}
}

func checkImage(t *testing.T, what, image string) {
	t.Helper()
	i := strings.LastIndex(image, ":")
	if image == "" || i < 0 || strings.Contains(image[i:], "/") || image[i+1:] == "" || image[i+1:] == "latest" {
		t.Errorf("%s: image %q must carry a pinned tag (never latest)", what, image)
	}
}

// checkDeployment checks one app's Deployment and returns its Dapr app-id.
func checkDeployment(t *testing.T, component string, d helmchart.Object, hasHPA bool, byKindName map[string]helmchart.Object) string {
	t.Helper()
	pod := helmchart.Dig(d, "spec", "template")
	ann := func(k string) string { return helmchart.DigString(pod, "metadata", "annotations", k) }
	c := helmchart.Dig(pod, "spec", "containers", "0")
	if n := len(helmchart.AsList(helmchart.Dig(pod, "spec", "containers"))); n != 1 {
		t.Errorf("%s: %d containers, want only the app (the injector adds daprd)", d, n)
	}
	checkImage(t, d.String(), helmchart.DigString(c, "image"))

	// One value, four places: dapr.io/app-port, the container port, APP_PORT, the probes' named port.
	port := ann("dapr.io/app-port")
	containerPort := fmt.Sprint(helmchart.Dig(c, "ports", "0", "containerPort"))
	if port == "" || port != containerPort || port != helmchart.EnvValue(c, "APP_PORT") || helmchart.DigString(c, "ports", "0", "name") != "http" {
		t.Errorf("%s: dapr.io/app-port %q, containerPort %s, APP_PORT %q must all be equal", d, port, containerPort, helmchart.EnvValue(c, "APP_PORT"))
	}
	// Both apps serve /metrics on their ops port, which OPS_PORT and the container port "ops"
	// name alike. The worker's event port is bound to loopback (only its sidecar may reach
	// it), so the kubelet probes its ops port.
	if ops := fmt.Sprint(helmchart.Dig(c, "ports", "1", "containerPort")); helmchart.DigString(c, "ports", "1", "name") != "ops" ||
		ops != helmchart.EnvValue(c, "OPS_PORT") {
		t.Errorf("%s: container port ops %s and OPS_PORT %q must be equal", d, ops, helmchart.EnvValue(c, "OPS_PORT"))
	}
	probePort := "http"
	if component == "worker" {
		probePort = "ops"
		if helmchart.EnvValue(c, "LISTEN_HOST") != "127.0.0.1" {
			t.Errorf("%s: LISTEN_HOST = %q, want 127.0.0.1 (events only from the pod's own sidecar)", d, helmchart.EnvValue(c, "LISTEN_HOST"))
		}
	}
	for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
		if helmchart.DigString(c, probe, "httpGet", "path") != path || helmchart.DigString(c, probe, "httpGet", "port") != probePort {
			t.Errorf("%s: %s must GET %s on port %s, got %v", d, probe, path, probePort, helmchart.Dig(c, probe))
		}
	}
	want := map[string]string{
		"dapr.io/enabled":                          "true",
		"dapr.io/app-protocol":                     "http",
		"dapr.io/enable-app-health-check":          "true",
		"dapr.io/disable-builtin-k8s-secret-store": "true",
	}
	if component == "worker" {
		want["dapr.io/disable-init-endpoints"] = "subscribe"
		want["dapr.io/app-health-check-path"] = "/readyz"
	}
	for k, v := range want {
		if got := ann(k); got != v {
			t.Errorf("%s: annotation %s = %q, want %q", d, k, got, v)
		}
	}
	for _, k := range []string{"dapr.io/app-id", "dapr.io/log-level", "dapr.io/app-health-check-path"} {
		if ann(k) == "" {
			t.Errorf("%s: annotation %s is missing", d, k)
		}
	}

	// terminationGracePeriodSeconds above daprd's block + graceful shutdown.
	block, err := time.ParseDuration(ann("dapr.io/block-shutdown-duration"))
	if err != nil {
		t.Errorf("%s: dapr.io/block-shutdown-duration: %v", d, err)
	}
	graceful, err := strconv.Atoi(ann("dapr.io/graceful-shutdown-seconds"))
	if err != nil {
		t.Errorf("%s: dapr.io/graceful-shutdown-seconds: %v", d, err)
	}
	tgps, _ := helmchart.Dig(pod, "spec", "terminationGracePeriodSeconds").(int)
	if float64(tgps) <= block.Seconds()+float64(graceful) {
		t.Errorf("%s: terminationGracePeriodSeconds %d must exceed block-shutdown %s + graceful-shutdown %ds", d, tgps, block, graceful)
	}

	// Restricted pod security.
	if helmchart.Dig(pod, "spec", "automountServiceAccountToken") != false {
		t.Errorf("%s: automountServiceAccountToken must be false", d)
	}
	psc := helmchart.Dig(pod, "spec", "securityContext")
	if helmchart.Dig(psc, "runAsNonRoot") != true || helmchart.Dig(psc, "runAsUser") != 65532 || helmchart.DigString(psc, "seccompProfile", "type") != "RuntimeDefault" {
		t.Errorf("%s: pod securityContext %v is not restricted (runAsNonRoot, runAsUser 65532, seccomp RuntimeDefault)", d, psc)
	}
	sc := helmchart.Dig(c, "securityContext")
	if helmchart.Dig(sc, "allowPrivilegeEscalation") != false || helmchart.Dig(sc, "readOnlyRootFilesystem") != true ||
		!slices.Equal(helmchart.AsList(helmchart.Dig(sc, "capabilities", "drop")), []any{"ALL"}) {
		t.Errorf("%s: container securityContext %v is not restricted", d, sc)
	}

	// replicas is the HPA's when there is one.
	if _, set := helmchart.Dig(d, "spec").(map[string]any)["replicas"]; set == hasHPA {
		t.Errorf("%s: replicas set=%v with an HPA=%v; exactly one of them must own the count", d, set, hasHPA)
	}

	// Tokens: the secret daprd gets by annotation is the one the app reads, key "token".
	for _, tok := range []struct{ annotation, env, app string }{
		{"dapr.io/app-token-secret", "APP_API_TOKEN", "worker"},
		{"dapr.io/api-token-secret", "DAPR_API_TOKEN", "publisher"},
	} {
		secret := ann(tok.annotation)
		if component != tok.app {
			continue
		}
		name, key := helmchart.EnvSecretRef(c, tok.env)
		if secret != name || (secret != "" && key != "token") {
			t.Errorf("%s: %s=%q but %s reads secret %q key %q; both must use one Secret, key token", d, tok.annotation, secret, tok.env, name, key)
		}
		// The chart's own Secret (<fullname>-app-token, -api-token; the release is named
		// "taskevents", so the fullname is too) must be rendered; any other name is an existingSecret.
		if secret == "taskevents-app-token" || secret == "taskevents-api-token" {
			if _, ok := byKindName["Secret/"+secret]; !ok {
				t.Errorf("%s: %s names Secret %q, which the chart did not render", d, tok.annotation, secret)
			}
		}
	}
	return ann("dapr.io/app-id")
}

// checkServices: the publisher's API has a Service; the worker's port is in no load-balanced
// Service. Each app's ops port is in a headless metrics Service.
func checkServices(t *testing.T, objs []helmchart.Object) {
	t.Helper()
	var publisherServices int
	for _, o := range objs {
		if o.Kind() != "Service" {
			continue
		}
		switch helmchart.DigString(o, "spec", "selector", "app.kubernetes.io/component") {
		case "publisher":
			if helmchart.DigString(o, "spec", "clusterIP") != "None" {
				publisherServices++
			}
		case "worker":
			if helmchart.DigString(o, "spec", "clusterIP") != "None" {
				t.Errorf("%s load-balances to the worker; only a headless metrics Service may select it", o)
			}
		default:
			t.Errorf("%s selects neither app", o)
		}
	}
	if publisherServices != 1 {
		t.Errorf("%d load-balanced Services for the publisher, want 1", publisherServices)
	}
}

// A typo'd or out-of-range value fails the install instead of being ignored.
func TestChartRejectsBadValues(t *testing.T) {
	helmchart.Helm(t)
	for _, c := range []struct {
		set  string
		want string
	}{
		{"publisher.replicaCont=2", "additional properties 'replicaCont' not allowed"},
		{"worker.dapr.appPrt=8001", "additional properties 'appPrt' not allowed"},
		{"worker.dapr.appPort=0", "minimum"},
		{"publisher.image.tag=latest", "/publisher/image/tag"},
		{"pubsub.component.broker=nats", "redis"},
		{"worker.dapr.disableInitEndpoints=subscibe", "does not match pattern"},
		{"worker.env.APP_PORT=9000", "the chart sets APP_PORT itself"},
		{"worker.autoscaling.enabled=true,worker.autoscaling.targetCPUUtilizationPercentage=0", "set targetCPUUtilizationPercentage"},
	} {
		t.Run(c.set, func(t *testing.T) {
			out, err := helmchart.RunHelm(t, "template", "taskevents", ".", "--set", c.set)
			if err == nil {
				t.Fatalf("helm template --set %s succeeded; want it rejected", c.set)
			}
			if !strings.Contains(out, c.want) {
				t.Fatalf("helm template --set %s failed without naming the problem (%q):\n%s", c.set, c.want, out)
			}
		})
	}
}

// kubeVersion in Chart.yaml keeps the chart off clusters older than it is written for.
func TestChartKubeVersion(t *testing.T) {
	helmchart.Helm(t)
	if out, err := helmchart.RunHelm(t, "template", "taskevents", ".", "--kube-version", "1.26.9"); err == nil ||
		!strings.Contains(out, "kubeVersion") {
		t.Fatalf("rendering for Kubernetes 1.26 did not fail on kubeVersion: %v\n%s", err, out)
	}
	helmchart.Render(t, "--kube-version", "1.27.0")
}

// Every key in values.yaml has a helm-docs "# --" comment right above it (the chart README's
// table is generated from them), except the keys of Kubernetes objects passed through as they
// are (resources, securityContext, ...), whose parent key is documented. The comment says what
// the key does, not its own path again: the README's table already names the key.
func TestChartValuesDocumented(t *testing.T) {
	f, err := os.Open(filepath.Join(helmchart.Dir(), "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	passThrough := []string{"resources", "podSecurityContext", "securityContext", "affinity", "nodeSelector",
		"tolerations", "topologySpreadConstraints", "podAnnotations", "podLabels", "annotations", "labels",
		"extraAnnotations", "env", "ingressFrom", "metricsFrom", "imagePullSecrets"}
	keyRe := regexp.MustCompile(`^( *)([A-Za-z0-9_]+):`)
	var path, comments []string
	var keys int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			comments = append(comments, strings.TrimSpace(strings.TrimPrefix(trimmed, "#")))
			continue
		}
		m := keyRe.FindStringSubmatch(line)
		if m == nil {
			comments = nil
			continue
		}
		depth := len(m[1]) / 2
		if depth > len(path) {
			t.Fatalf("values.yaml: unexpected indentation at %q", line)
		}
		path = append(path[:depth], m[2])
		inside := false
		for _, p := range path[:len(path)-1] {
			inside = inside || slices.Contains(passThrough, p)
		}
		if !inside {
			keys++
			dotted := strings.Join(path, ".")
			i := slices.IndexFunc(comments, func(c string) bool { return strings.HasPrefix(c, "-- ") })
			switch {
			case i < 0:
				t.Errorf("values.yaml: %s has no helm-docs comment (# -- ...) right above it", dotted)
			case strings.HasPrefix(strings.TrimPrefix(comments[i], "-- "), dotted+" "):
				t.Errorf("values.yaml: the comment of %s starts by repeating its path: %q", dotted, comments[i])
			}
		}
		comments = nil
	}
	if keys < 100 {
		t.Fatalf("checked only %d keys of values.yaml; the parser is broken", keys)
	}

	// The schema is strict at every level it describes. A $ref'd definition describes the
	// same object as the schema that refers to it, so it is walked there: a closed definition
	// closes the object (the worker's block is the shared app definition without service).
	data, err := os.ReadFile(filepath.Join(helmchart.Dir(), "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(data, &schema); err != nil {
		t.Fatal(err)
	}
	defs, _ := schema["$defs"].(map[string]any)
	var walk func(s map[string]any, at string)
	walk = func(s map[string]any, at string) {
		ref, hasRef := s["$ref"].(string)
		if hasRef {
			name, _ := strings.CutPrefix(ref, "#/$defs/")
			def, ok := defs[name].(map[string]any)
			if !ok {
				t.Errorf("values.schema.json: %s refers to %q, which is not in $defs", at, ref)
				return
			}
			walk(def, at)
		}
		props, ok := s["properties"].(map[string]any)
		if !ok {
			return
		}
		if s["additionalProperties"] != false && !hasRef {
			t.Errorf("values.schema.json: %s allows unknown keys", at)
		}
		for k, p := range props {
			if ps, ok := p.(map[string]any); ok {
				walk(ps, strings.TrimPrefix(at+"."+k, "."))
				if items, ok := ps["items"].(map[string]any); ok {
					walk(items, at+"."+k+"[]")
				}
			}
		}
	}
	walk(schema, "")
}

// Argo CD renders with helm template, where lookup finds nothing: a token the chart
// generated there would rotate on every sync. Rendered twice, the chart gives the same
// objects with existingSecret, and a clear failure naming the value without it.
func TestChartTokensUnderTemplate(t *testing.T) {
	helmchart.Helm(t)
	for _, kind := range []string{"app", "api"} {
		t.Run(kind+"-generated-fails", func(t *testing.T) {
			out, err := helmchart.RunHelm(t, "template", "taskevents", ".", "--namespace", "tasks",
				"--set", "tokens."+kind+".enabled=true")
			want := "tokens." + kind + ".existingSecret"
			if err == nil || !strings.Contains(out, want) {
				t.Errorf("helm template with tokens.%s.enabled and no existingSecret: err=%v, want a failure naming %s:\n%s",
					kind, err, want, out)
			}
		})
	}
	t.Run("existing-secrets-render-the-same-twice", func(t *testing.T) {
		args := []string{"template", "taskevents", ".", "--namespace", "tasks",
			"-f", filepath.Join(helmchart.Dir(), "ci", "tokens-values.yaml")}
		first, err := helmchart.RunHelm(t, args...)
		if err != nil {
			t.Fatalf("helm template: %v\n%s", err, first)
		}
		second, err := helmchart.RunHelm(t, args...)
		if err != nil {
			t.Fatalf("helm template: %v\n%s", err, second)
		}
		if first != second {
			t.Errorf("two renders of tokens-values differ: an Argo CD sync would change the pods every time")
		}
		for _, secret := range []string{"dapr-app-token", "dapr-api-token"} {
			if !strings.Contains(first, "name: "+secret) {
				t.Errorf("the render does not reference Secret %s", secret)
			}
		}
	})
}
