package repo

// Every object the chart renders, and every file Argo CD / Flux apply from subscriptions/ and
// components/, validated strictly and offline against the schemas the API server itself uses:
// the Kubernetes OpenAPI v3 documents shipped in the k8s.io/kubernetes module
// (api/openapi-spec/v3), Dapr's CRDs from the pinned dapr module (charts/dapr/crds) and the
// Prometheus Operator's ServiceMonitor and PrometheusRule CRDs. Unknown fields are rejected, as the API server's
// strict field validation does: every object schema that lists its properties is closed.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// The schema sources, pinned. kubernetesVersion is the kube-apiserver release the
// API-server tests run (tools/kube); the Dapr version comes from tools/daprd/go.mod.
const (
	kubernetesModule         = "k8s.io/kubernetes@v1.37.2"
	prometheusOperatorModule = "github.com/prometheus-operator/prometheus-operator@v0.85.0"
)

// kubeGroupVersions are the built-in API groups the chart renders objects of.
var kubeGroupVersions = []string{"v1", "apps/v1", "autoscaling/v2", "policy/v1", "networking.k8s.io/v1"}

// moduleDir downloads (or finds in the module cache) one module version and returns its
// directory. With dir set, mod may be a bare path resolved by that directory's go.mod.
func moduleDir(t *testing.T, dir, mod string) string {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", mod)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	var m struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &m); err != nil || jerr != nil || m.Dir == "" {
		t.Fatalf("go mod download %s: %v %s %s", mod, err, m.Error, out)
	}
	return m.Dir
}

type schemaValidator struct {
	byGVK map[string]*jsonschema.Schema // "apiVersion kind"
}

var (
	validatorOnce sync.Once
	validatorInst *schemaValidator
	validatorErr  error
)

// objectValidator builds the validator once per test binary (compiling the schemas takes a
// few seconds).
func objectValidator(t *testing.T) *schemaValidator {
	t.Helper()
	validatorOnce.Do(func() {
		kube := filepath.Join(moduleDir(t, os.TempDir(), kubernetesModule), "api", "openapi-spec", "v3")
		dapr := filepath.Join(moduleDir(t, filepath.Join(root, "tools", "daprd"), "github.com/dapr/dapr"), "charts", "dapr", "crds")
		prom := filepath.Join(moduleDir(t, os.TempDir(), prometheusOperatorModule), "example", "prometheus-operator-crd")
		crds, err := filepath.Glob(filepath.Join(dapr, "*.yaml"))
		if err == nil && len(crds) == 0 {
			err = fmt.Errorf("no CRDs in %s", dapr)
		}
		if err == nil {
			crds = append(crds, filepath.Join(prom, "monitoring.coreos.com_servicemonitors.yaml"),
				filepath.Join(prom, "monitoring.coreos.com_prometheusrules.yaml"))
			validatorInst, err = newSchemaValidator(kube, crds)
		}
		validatorErr = err
	})
	if validatorErr != nil {
		t.Fatal(validatorErr)
	}
	return validatorInst
}

const objectMetaRef = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"

func kubeSpecURL(gv string) string { return "kube:///" + strings.ReplaceAll(gv, "/", "__") }

func newSchemaValidator(kubeSpecDir string, crdFiles []string) (*schemaValidator, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	v := &schemaValidator{byGVK: map[string]*jsonschema.Schema{}}
	type target struct{ gvk, url string }
	var targets []target

	for _, gv := range kubeGroupVersions {
		file := "api__v1_openapi.json"
		if gv != "v1" {
			group, version, _ := strings.Cut(gv, "/")
			file = fmt.Sprintf("apis__%s__%s_openapi.json", group, version)
		}
		data, err := os.ReadFile(filepath.Join(kubeSpecDir, file))
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		schemas, _ := dig(doc, "components", "schemas").(map[string]any)
		if len(schemas) == 0 {
			return nil, fmt.Errorf("%s has no components.schemas", file)
		}
		for name, s := range schemas {
			closeSchema(s, false)
			for _, g := range asList(dig(s, "x-kubernetes-group-version-kind")) {
				apiVersion := digString(g, "version")
				if grp := digString(g, "group"); grp != "" {
					apiVersion = grp + "/" + apiVersion
				}
				if apiVersion == gv {
					targets = append(targets, target{apiVersion + " " + digString(g, "kind"), kubeSpecURL(gv) + "#/components/schemas/" + name})
				}
			}
		}
		if err := c.AddResource(kubeSpecURL(gv), doc); err != nil {
			return nil, err
		}
	}

	for _, f := range crdFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var crd map[string]any
		if err := yaml.Unmarshal(data, &crd); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		crdJSON, err := toJSONValue(crd)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		group, kind := digString(crdJSON, "spec", "group"), digString(crdJSON, "spec", "names", "kind")
		for _, ver := range asList(dig(crdJSON, "spec", "versions")) {
			if dig(ver, "served") != true {
				continue
			}
			s, ok := dig(ver, "schema", "openAPIV3Schema").(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s: version %s has no openAPIV3Schema", f, digString(ver, "name"))
			}
			closeSchema(s, true)
			// The API server validates metadata as ObjectMeta, whatever the CRD says.
			if props, ok := s["properties"].(map[string]any); ok {
				props["metadata"] = map[string]any{"$ref": kubeSpecURL("v1") + "#/components/schemas/" + objectMetaRef}
			}
			apiVersion := group + "/" + digString(ver, "name")
			url := "crd:///" + group + "/" + digString(ver, "name") + "/" + kind
			if err := c.AddResource(url, s); err != nil {
				return nil, err
			}
			targets = append(targets, target{apiVersion + " " + kind, url})
		}
	}

	for _, tg := range targets {
		s, err := c.Compile(tg.url)
		if err != nil {
			return nil, fmt.Errorf("compile %s: %w", tg.gvk, err)
		}
		v.byGVK[tg.gvk] = s
	}
	return v, nil
}

// closeSchema rejects unknown fields: an object schema that lists its properties gets
// additionalProperties false unless it preserves unknown fields. In a CRD's structural
// schema an object with neither properties nor additionalProperties has no fields at all.
// x-kubernetes-int-or-string becomes an explicit integer-or-string.
func closeSchema(s any, crd bool) {
	m, ok := s.(map[string]any)
	if !ok {
		return
	}
	if props, ok := m["properties"].(map[string]any); ok {
		for _, p := range props {
			closeSchema(p, crd)
		}
	}
	for _, k := range []string{"items", "additionalProperties", "not"} {
		closeSchema(m[k], crd)
	}
	for _, k := range []string{"allOf", "anyOf", "oneOf"} {
		for _, sub := range asList(m[k]) {
			closeSchema(sub, crd)
		}
	}
	if m["x-kubernetes-int-or-string"] == true && m["anyOf"] == nil {
		delete(m, "type")
		m["anyOf"] = []any{map[string]any{"type": "integer"}, map[string]any{"type": "string"}}
	}
	if m["x-kubernetes-preserve-unknown-fields"] == true {
		return
	}
	if _, has := m["additionalProperties"]; has {
		return
	}
	_, hasProps := m["properties"]
	if hasProps || (crd && m["type"] == "object") {
		m["additionalProperties"] = false
	}
}

// toJSONValue turns a decoded YAML value into what jsonschema validates (JSON numbers).
func toJSONValue(v any) (any, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(data))
}

// validate checks one object against the schema of its apiVersion and kind, plus what the
// API server requires beyond the schema (a name).
func (v *schemaValidator) validate(o object) error {
	s, ok := v.byGVK[o.apiVersion()+" "+o.kind()]
	if !ok {
		known := slices.Sorted(mapKeys(v.byGVK))
		return fmt.Errorf("no schema for apiVersion %q kind %q (known: %s)", o.apiVersion(), o.kind(), strings.Join(known, ", "))
	}
	if o.name() == "" {
		return fmt.Errorf("metadata.name is missing")
	}
	doc, err := toJSONValue(map[string]any(o))
	if err != nil {
		return err
	}
	return s.Validate(doc)
}

func TestSchemaChartObjects(t *testing.T) {
	helmBin(t)
	v := objectValidator(t)
	for name, args := range chartValuesCases(t) {
		t.Run(name, func(t *testing.T) {
			objs := renderChart(t, args...)
			for _, o := range objs {
				if err := v.validate(o); err != nil {
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
	v := objectValidator(t)
	var checked int
	for _, dir := range []string{"subscriptions", "components"} {
		files, err := filepath.Glob(filepath.Join(root, dir, "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			rel, _ := filepath.Rel(root, f)
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			objs, err := decodeObjects(data)
			if err != nil {
				t.Errorf("%s: %v", rel, err)
				continue
			}
			if filepath.Base(f) == "kustomization.yaml" {
				for _, r := range asList(dig(objs[0], "resources")) {
					if _, err := os.Stat(filepath.Join(root, dir, fmt.Sprint(r))); err != nil {
						t.Errorf("%s lists %v: %v", rel, r, err)
					}
				}
				continue
			}
			for _, o := range objs {
				if err := v.validate(o); err != nil {
					t.Errorf("%s: %s: %v", rel, o, err)
				}
				if o["metadata"] != nil && dig(o, "metadata", "namespace") != nil {
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
	v := objectValidator(t)
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
			objs, err := decodeObjects([]byte(c.yaml))
			if err != nil || len(objs) != 1 {
				t.Fatalf("test YAML: %v", err)
			}
			err = v.validate(objs[0])
			if err == nil {
				t.Fatalf("accepted; the API server rejects it")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("rejected without naming %q: %v", c.want, err)
			}
		})
	}
}
