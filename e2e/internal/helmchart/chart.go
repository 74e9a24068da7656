// Package helmchart renders the chart (charts/taskevents) with the pinned helm and checks
// rendered objects against the schemas the API server uses: what the repository checks, the
// flows and the cluster tests all read the chart through it.
package helmchart

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/taskevents/taskevents/e2e/internal/suite"
)

// Helm is the helm the chart tests run: tools/helm/build.sh builds the pinned one and
// `make test` passes its path in HELM.
func Helm(t *testing.T) string {
	t.Helper()
	h := os.Getenv("HELM")
	if h == "" {
		t.Skip("HELM is not set: run the chart tests with `make test`, which builds the pinned helm (tools/helm/build.sh) and sets HELM")
	}
	return h
}

// Dir is the chart's directory.
func Dir() string { return filepath.Join(suite.Root, "charts", "taskevents") }

// RunHelm runs helm with its config, cache and data in a scratch directory and no cluster,
// so nothing on the machine changes what it renders. It returns stdout and stderr together.
func RunHelm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	home := t.TempDir()
	kubeconfig := filepath.Join(home, "kubeconfig")
	if err := os.WriteFile(kubeconfig, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(Helm(t), args...)
	cmd.Dir = Dir()
	cmd.Env = append(os.Environ(),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
		"KUBECONFIG="+kubeconfig)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// Object is one rendered Kubernetes object, as decoded from YAML.
type Object map[string]any

// Kind is the object's kind; empty when missing.
func (o Object) Kind() string { s, _ := o["kind"].(string); return s }

// APIVersion is the object's apiVersion; empty when missing.
func (o Object) APIVersion() string { s, _ := o["apiVersion"].(string); return s }

// Name is the object's metadata.name; empty when missing.
func (o Object) Name() string { s, _ := Dig(o, "metadata", "name").(string); return s }

func (o Object) String() string { return o.APIVersion() + " " + o.Kind() + " " + o.Name() }

// Dig walks maps by key and lists by decimal index; nil when a step is missing.
func Dig(v any, path ...string) any {
	for _, p := range path {
		switch c := v.(type) {
		case map[string]any:
			v = c[p]
		case Object:
			v = c[p]
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(c) {
				return nil
			}
			v = c[i]
		default:
			return nil
		}
	}
	return v
}

// DigString is Dig for a string value; empty when missing or not a string.
func DigString(v any, path ...string) string { s, _ := Dig(v, path...).(string); return s }

// DecodeObjects splits a multi-document YAML stream into its non-empty documents.
func DecodeObjects(data []byte) ([]Object, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var objs []Object
	for {
		var o map[string]any
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(o) > 0 {
			objs = append(objs, Object(o))
		}
	}
}

// Render runs `helm template` and decodes what it printed.
func Render(t *testing.T, args ...string) []Object {
	t.Helper()
	out, err := RunHelm(t, append([]string{"template", "taskevents", ".", "--namespace", "tasks"}, args...)...)
	if err != nil {
		t.Fatalf("helm template %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	objs, err := DecodeObjects([]byte(out))
	if err != nil {
		t.Fatalf("decoding helm template output: %v", err)
	}
	if len(objs) == 0 {
		t.Fatal("helm template rendered nothing")
	}
	return objs
}

// AsList is v as a list; nil when it is not one.
func AsList(v any) []any { l, _ := v.([]any); return l }

// EnvValue is the literal value of a container's environment variable name.
func EnvValue(container any, name string) string {
	for _, e := range AsList(Dig(container, "env")) {
		if DigString(e, "name") == name {
			return DigString(e, "value")
		}
	}
	return ""
}

// EnvSecretRef is the Secret and key a container's environment variable name reads.
func EnvSecretRef(container any, name string) (secret, key string) {
	for _, e := range AsList(Dig(container, "env")) {
		if DigString(e, "name") == name {
			return DigString(e, "valueFrom", "secretKeyRef", "name"), DigString(e, "valueFrom", "secretKeyRef", "key")
		}
	}
	return "", ""
}
