package helmchart

// Every object the chart renders, and every file Argo CD / Flux apply, validated strictly and
// offline against the schemas the API server itself uses: the Kubernetes OpenAPI v3
// documents shipped in the k8s.io/kubernetes module (api/openapi-spec/v3), Dapr's CRDs from
// the pinned dapr module (charts/dapr/crds) and the Prometheus Operator's ServiceMonitor and
// PrometheusRule CRDs. Unknown fields are rejected, as the API server's strict field
// validation does: every object schema that lists its properties is closed.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/taskevents/taskevents/e2e/internal/suite"
)

// The schema sources, pinned. kubernetesVersion is the kube-apiserver release the
// API-server tests run (tools/kube); the Dapr version comes from tools/daprd/go.mod.
const (
	kubernetesModule         = "k8s.io/kubernetes@v1.37.2"
	PrometheusOperatorModule = "github.com/prometheus-operator/prometheus-operator@v0.85.0"
)

// kubeGroupVersions are the built-in API groups the chart renders objects of.
var kubeGroupVersions = []string{"v1", "apps/v1", "autoscaling/v2", "policy/v1", "networking.k8s.io/v1"}

// ModuleDir downloads (or finds in the module cache) one module version and returns its
// directory. With dir set, mod may be a bare path resolved by that directory's go.mod.
func ModuleDir(t *testing.T, dir, mod string) string {
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

// SchemaValidator validates rendered objects by apiVersion and kind.
type SchemaValidator struct {
	byGVK map[string]*jsonschema.Schema // "apiVersion kind"
}

var (
	validatorOnce sync.Once
	validatorInst *SchemaValidator
	validatorErr  error
)

// ObjectValidator builds the validator once per test binary (compiling the schemas takes a
// few seconds).
func ObjectValidator(t *testing.T) *SchemaValidator {
	t.Helper()
	validatorOnce.Do(func() {
		kube := filepath.Join(ModuleDir(t, os.TempDir(), kubernetesModule), "api", "openapi-spec", "v3")
		dapr := filepath.Join(ModuleDir(t, filepath.Join(suite.Root, "tools", "daprd"), "github.com/dapr/dapr"), "charts", "dapr", "crds")
		prom := filepath.Join(ModuleDir(t, os.TempDir(), PrometheusOperatorModule), "example", "prometheus-operator-crd")
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

func newSchemaValidator(kubeSpecDir string, crdFiles []string) (*SchemaValidator, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	v := &SchemaValidator{byGVK: map[string]*jsonschema.Schema{}}
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
		schemas, _ := Dig(doc, "components", "schemas").(map[string]any)
		if len(schemas) == 0 {
			return nil, fmt.Errorf("%s has no components.schemas", file)
		}
		for name, s := range schemas {
			closeSchema(s, false)
			for _, g := range AsList(Dig(s, "x-kubernetes-group-version-kind")) {
				apiVersion := DigString(g, "version")
				if grp := DigString(g, "group"); grp != "" {
					apiVersion = grp + "/" + apiVersion
				}
				if apiVersion == gv {
					targets = append(targets, target{apiVersion + " " + DigString(g, "kind"), kubeSpecURL(gv) + "#/components/schemas/" + name})
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
		group, kind := DigString(crdJSON, "spec", "group"), DigString(crdJSON, "spec", "names", "kind")
		for _, ver := range AsList(Dig(crdJSON, "spec", "versions")) {
			if Dig(ver, "served") != true {
				continue
			}
			s, ok := Dig(ver, "schema", "openAPIV3Schema").(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s: version %s has no openAPIV3Schema", f, DigString(ver, "name"))
			}
			closeSchema(s, true)
			// The API server validates metadata as ObjectMeta, whatever the CRD says.
			if props, ok := s["properties"].(map[string]any); ok {
				props["metadata"] = map[string]any{"$ref": kubeSpecURL("v1") + "#/components/schemas/" + objectMetaRef}
			}
			apiVersion := group + "/" + DigString(ver, "name")
			url := "crd:///" + group + "/" + DigString(ver, "name") + "/" + kind
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
		for _, sub := range AsList(m[k]) {
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

// Validate checks one object against the schema of its apiVersion and kind, plus what the
// API server requires beyond the schema (a name).
func (v *SchemaValidator) Validate(o Object) error {
	s, ok := v.byGVK[o.APIVersion()+" "+o.Kind()]
	if !ok {
		known := slices.Sorted(maps.Keys(v.byGVK))
		return fmt.Errorf("no schema for apiVersion %q kind %q (known: %s)", o.APIVersion(), o.Kind(), strings.Join(known, ", "))
	}
	if o.Name() == "" {
		return fmt.Errorf("metadata.name is missing")
	}
	doc, err := toJSONValue(map[string]any(o))
	if err != nil {
		return err
	}
	return s.Validate(doc)
}
