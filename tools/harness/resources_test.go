package harness

import (
	"strings"
	"testing"
)

const component = `# a comment that must survive
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pubsub
spec:
  type: pubsub.redis
  version: v1
  metadata:
    - name: redisHost
      value: redis-master.default.svc.cluster.local:6379
    - name: processingTimeout
      value: "60000"
scopes:
  - task-api
`

func TestOverrideMetadata(t *testing.T) {
	tests := []struct {
		name      string
		overrides map[string]string
		want      []string // substrings of the result
		unchanged []string
		wantErr   string
	}{
		{
			name:      "replaces only the named value",
			overrides: map[string]string{"redisHost": "127.0.0.1:6380"},
			want:      []string{`value: "127.0.0.1:6380"`, "# a comment that must survive", `value: "60000"`, "- task-api"},
			unchanged: []string{"redis-master"},
		},
		{
			name:      "no overrides keeps the manifest",
			overrides: nil,
			want:      []string{"redis-master.default.svc.cluster.local:6379"},
		},
		{
			name:      "an unknown entry fails instead of running against the cluster's host",
			overrides: map[string]string{"host": "127.0.0.1:6380"},
			wantErr:   `no metadata entry "host"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := OverrideMetadata([]byte(component), tt.overrides)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("result lacks %q:\n%s", w, out)
				}
			}
			for _, u := range tt.unchanged {
				if strings.Contains(string(out), u) {
					t.Errorf("result still has %q:\n%s", u, out)
				}
			}
		})
	}
}

func TestOverrideMetadataRejectsNonComponents(t *testing.T) {
	for _, in := range []string{"", "kind: Component\n", "spec:\n  metadata: {}\n", "{"} {
		if _, err := OverrideMetadata([]byte(in), map[string]string{"redisHost": "x"}); err == nil {
			t.Errorf("OverrideMetadata(%q) succeeded, want an error", in)
		}
	}
}
