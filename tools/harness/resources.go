package harness

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"
)

// ComponentsDir writes the broker's component file and the state store's (from
// components/, with only their address metadata overridden: the state store points at
// stateRedis) and the shared Resiliency policy into a fresh directory for daprd's
// --resources-path. Subscriptions are not copied: daprd reads subscriptions/ as it is.
func (h *Harness) ComponentsDir(b *Broker, stateRedis string) (string, error) {
	return h.ComponentsDirWith(b, stateRedis, nil)
}

// ComponentsDirWith is ComponentsDir with extra overrides of the broker component's
// metadata (for example "concurrency"), applied after the broker's own address overrides.
func (h *Harness) ComponentsDirWith(b *Broker, stateRedis string, extra map[string]string) (string, error) {
	dir, err := os.MkdirTemp(h.Dir, "components-"+b.Name+"-")
	if err != nil {
		return "", err
	}
	src := filepath.Join(h.Root, "components", b.ComponentFile)
	raw, err := os.ReadFile(src)
	if err != nil {
		return "", err
	}
	overrides := maps.Clone(b.Overrides)
	if overrides == nil {
		overrides = map[string]string{}
	}
	maps.Copy(overrides, extra)
	patched, err := OverrideMetadata(raw, overrides)
	if err != nil {
		return "", fmt.Errorf("%s: %w", src, err)
	}
	if err := os.WriteFile(filepath.Join(dir, b.ComponentFile), patched, 0o600); err != nil {
		return "", err
	}
	state, err := os.ReadFile(filepath.Join(h.Root, "components", "statestore.yaml"))
	if err != nil {
		return "", err
	}
	if state, err = OverrideMetadata(state, map[string]string{"redisHost": stateRedis}); err != nil {
		return "", fmt.Errorf("components/statestore.yaml: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "statestore.yaml"), state, 0o600); err != nil {
		return "", err
	}
	resiliency, err := os.ReadFile(filepath.Join(h.Root, "components", "resiliency.yaml"))
	if err != nil {
		return "", err
	}
	return dir, os.WriteFile(filepath.Join(dir, "resiliency.yaml"), resiliency, 0o600)
}

// OverrideMetadata sets spec.metadata[name].value for each override in a Component
// manifest, keeping everything else (comments included). Every override must name an
// existing entry, so a renamed field fails loudly instead of silently using the cluster's.
func OverrideMetadata(manifest []byte, overrides map[string]string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(manifest, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("empty manifest")
	}
	items := lookup(lookup(doc.Content[0], "spec"), "metadata")
	if items == nil || items.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("no spec.metadata list")
	}
	for name, value := range overrides {
		found := false
		for _, item := range items.Content {
			if n := lookup(item, "name"); n != nil && n.Value == name {
				if v := lookup(item, "value"); v != nil {
					v.Value, v.Tag, v.Style = value, "!!str", yaml.DoubleQuotedStyle
					found = true
				}
			}
		}
		if !found {
			return nil, fmt.Errorf("no metadata entry %q with a value to override", name)
		}
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	return out.Bytes(), enc.Close()
}

func lookup(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}
