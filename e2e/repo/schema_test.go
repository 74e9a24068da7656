package repo

// Every object the chart renders, and every file Argo CD / Flux apply from subscriptions/ and
// components/, validated strictly and offline against the schemas the API server itself uses:
// the Kubernetes OpenAPI v3 documents shipped in the k8s.io/kubernetes module
// (api/openapi-spec/v3), Dapr's CRDs from the pinned dapr module (charts/dapr/crds) and the
// Prometheus Operator's ServiceMonitor and PrometheusRule CRDs. Unknown fields are rejected, as the API server's
// strict field validation does: every object schema that lists its properties is closed.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/taskevents/taskevents/e2e/internal/helmchart"
	"github.com/taskevents/taskevents/e2e/internal/suite"
)

func TestSchemaChartObjects(t *testing.T) {
	helmchart.Helm(t)
	v := helmchart.ObjectValidator(t)
	for name, args := range chartValuesCases(t) {
		t.Run(name, func(t *testing.T) {
			objs := helmchart.Render(t, args...)
			for _, o := range objs {
				if err := v.Validate(o); err != nil {
					t.Errorf("%s: %v", o, err)
				}
			}
			t.Logf("%s: %d objects valid", name, len(objs))
		})
	}
}

// The GitOps bases: every resource file is valid, and each kustomization.yaml lists files
// that exist.
func TestSchemaGitOpsFiles(t *testing.T) {
	v := helmchart.ObjectValidator(t)
	var checked int
	for _, dir := range []string{"subscriptions", "components"} {
		files, err := filepath.Glob(filepath.Join(suite.Root, dir, "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			rel, _ := filepath.Rel(suite.Root, f)
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			objs, err := helmchart.DecodeObjects(data)
			if err != nil {
				t.Errorf("%s: %v", rel, err)
				continue
			}
			if filepath.Base(f) == "kustomization.yaml" {
				for _, r := range helmchart.AsList(helmchart.Dig(objs[0], "resources")) {
					if _, err := os.Stat(filepath.Join(suite.Root, dir, fmt.Sprint(r))); err != nil {
						t.Errorf("%s lists %v: %v", rel, r, err)
					}
				}
				continue
			}
			for _, o := range objs {
				if err := v.Validate(o); err != nil {
					t.Errorf("%s: %s: %v", rel, o, err)
				}
				if o["metadata"] != nil && helmchart.Dig(o, "metadata", "namespace") != nil {
					t.Errorf("%s: %s sets metadata.namespace; the GitOps tool decides", rel, o)
				}
				checked++
			}
		}
	}
	if checked < 5 {
		t.Fatalf("validated only %d objects in subscriptions/ and components/", checked)
	}
}

// The validator must fail on what the API server rejects, or every pass above proves nothing.
func TestSchemaRejectsInvalidObjects(t *testing.T) {
	v := helmchart.ObjectValidator(t)
	for _, c := range []struct{ name, yaml, want string }{
		{"v1alpha1 route field on a v2alpha1 Subscription", `
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: {name: s}
spec: {pubsubname: pubsub, topic: t, route: /events/todo, routes: {default: /events/todo}}`, "route"},
		{"Subscription without routes", `
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata: {name: s}
spec: {pubsubname: pubsub, topic: t}`, "routes"},
		{"Component without version", `
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: pubsub}
spec: {type: pubsub.redis, metadata: [{name: redisHost, value: "r:6379"}]}`, "version"},
		{"Component with a misspelled secretKeyRef", `
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: pubsub}
spec: {type: pubsub.redis, version: v1, metadata: [{name: redisPassword, secretRef: {name: s}}]}`, "secretRef"},
		{"Resiliency with an unknown policy kind", `
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: {name: r}
spec: {policies: {retry: {x: {policy: constant}}}, targets: {}}`, "retry"},
		{"unknown metadata field", `
apiVersion: v1
kind: Service
metadata: {name: s, labelz: {a: b}}
spec: {ports: [{port: 80}]}`, "labelz"},
		{"Deployment container field typo", `
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec: {containers: [{name: c, image: i, imagePulPolicy: Always}]}`, "imagePulPolicy"},
		{"Deployment without selector", `
apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec: {template: {spec: {containers: [{name: c, image: i}]}}}`, "selector"},
		{"port as a word where a number is required", `
apiVersion: v1
kind: Service
metadata: {name: s}
spec: {ports: [{port: http}]}`, "port"},
		{"unknown kind", `
apiVersion: dapr.io/v1alpha1
kind: Subscriptions
metadata: {name: s}`, "no schema"},
	} {
		t.Run(c.name, func(t *testing.T) {
			objs, err := helmchart.DecodeObjects([]byte(c.yaml))
			if err != nil || len(objs) != 1 {
				t.Fatalf("test YAML: %v", err)
			}
			err = v.Validate(objs[0])
			if err == nil {
				t.Fatalf("accepted; the API server rejects it")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("rejected without naming %q: %v", c.want, err)
			}
		})
	}
}
