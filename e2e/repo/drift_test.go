package repo

// The chart can render the Dapr resources itself (pubsub.component.create and friends) for
// clusters without GitOps, and components/ and subscriptions/ are what GitOps applies: two
// copies of one configuration. This test renders the chart's copy for every broker and
// holds it to the committed files, so a setting changed in one place fails here.

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/taskevents/taskevents/e2e/internal/helmchart"
	"github.com/taskevents/taskevents/e2e/internal/suite"
	"github.com/taskevents/taskevents/tools/harness"
)

// deploymentSpecific are component metadata whose value depends on where the broker runs:
// both copies must set them, but their values may differ (the chart's come from values).
var deploymentSpecific = map[string]bool{
	"redisHost": true, "redisPassword": true, "enableTLS": true,
	"brokers": true, "authType": true, "saslUsername": true, "saslPassword": true, "saslMechanism": true, "disableTls": true,
	"connectionString": true,
	"region":           true, "endpoint": true, "accessKey": true, "secretKey": true,
}

func TestChartResourcesMatchGitOpsFiles(t *testing.T) {
	helmchart.Helm(t)
	brokers := map[string]string{}
	files, _ := filepath.Glob(filepath.Join(suite.Root, "components", "*.yaml"))
	for _, f := range files {
		for _, o := range decodeFile(t, f) {
			if typ := helmchart.DigString(o, "spec", "type"); strings.HasPrefix(typ, "pubsub.") {
				brokers[strings.TrimSuffix(filepath.Base(f), ".yaml")] = f
			}
		}
	}
	if len(brokers) < 4 {
		t.Fatalf("found %d pub/sub components in components/, want redis, kafka, rabbitmq and snssqs", len(brokers))
	}
	for broker, file := range brokers {
		t.Run(broker, func(t *testing.T) {
			objs := helmchart.Render(t, "--set", "pubsub.component.create=true", "--set", "pubsub.component.broker="+broker,
				"--set", "stateStore.component.create=true", "--set", "pubsub.subscriptions.create=true",
				"--set", "pubsub.resiliency.create=true")
			byType := map[string]helmchart.Object{}
			for _, o := range objs {
				if o.Kind() == "Component" {
					byType[helmchart.DigString(o, "spec", "type")] = o
				}
			}
			want := decodeFile(t, file)[0]
			sameComponent(t, byType[helmchart.DigString(want, "spec", "type")], want)
			sameComponent(t, byType["state.redis"], decodeFile(t, filepath.Join(suite.Root, "components", "statestore.yaml"))[0])

			rendered := map[string]helmchart.Object{}
			for _, o := range objs {
				if o.Kind() == "Subscription" || o.Kind() == "Resiliency" {
					rendered[o.Kind()+" "+helmchart.DigString(o, "spec", "topic")] = o
				}
			}
			for _, f := range []string{"subscriptions/task-events.yaml", "subscriptions/task-events-deadletter.yaml", "components/resiliency.yaml"} {
				w := decodeFile(t, filepath.Join(suite.Root, f))[0]
				got, ok := rendered[w.Kind()+" "+helmchart.DigString(w, "spec", "topic")]
				if !ok {
					t.Errorf("the chart renders no %s like %s", w.Kind(), f)
					continue
				}
				sameSpec(t, f, got, w)
			}
		})
	}
	t.Run("tracing", func(t *testing.T) {
		// The chart's Configuration with the file's collector address (a deployment's choice)
		// and every other tracing value at its default must be the file, name included: the
		// pods' dapr.io/config is the same either way.
		w := decodeFile(t, filepath.Join(suite.Root, harness.TracingConfigFile))[0]
		objs := helmchart.Render(t, "--set", "tracing.enabled=true",
			"--set", "tracing.otel.endpointAddress="+helmchart.DigString(w, "spec", "tracing", "otel", "endpointAddress"))
		for _, o := range objs {
			if o.Kind() == "Configuration" {
				if g, f := helmchart.DigString(o, "metadata", "name"), helmchart.DigString(w, "metadata", "name"); g != f {
					t.Errorf("the chart's Configuration is named %q, %s's %q", g, harness.TracingConfigFile, f)
				}
				sameSpec(t, harness.TracingConfigFile, o, w)
				return
			}
		}
		t.Errorf("the chart renders no Configuration like %s", harness.TracingConfigFile)
	})
	t.Run("bulk-subscription", func(t *testing.T) {
		objs := helmchart.Render(t, "--set", "pubsub.subscriptions.create=true", "--set", "pubsub.subscriptions.bulkSubscribe.enabled=true")
		w := decodeFile(t, filepath.Join(suite.Root, "subscriptions", "bulk", "task-events.yaml"))[0]
		for _, o := range objs {
			if o.Kind() == "Subscription" && helmchart.DigString(o, "spec", "topic") == helmchart.DigString(w, "spec", "topic") {
				sameSpec(t, "subscriptions/bulk/task-events.yaml", o, w)
				return
			}
		}
		t.Error("the chart renders no bulk task-events Subscription")
	})
}

// sameComponent compares type, version, scopes and metadata: the same names in both, and
// the same values except where the deployment decides.
func sameComponent(t *testing.T, got, want helmchart.Object) {
	t.Helper()
	name := helmchart.DigString(want, "spec", "type")
	if got == nil {
		t.Errorf("the chart renders no %s component", name)
		return
	}
	for _, path := range [][]string{{"spec", "type"}, {"spec", "version"}} {
		if g, w := helmchart.Dig(got, path...), helmchart.Dig(want, path...); !reflect.DeepEqual(g, w) {
			t.Errorf("%s: %s is %v in the chart, %v in components/", name, strings.Join(path, "."), g, w)
		}
	}
	if g, w := fmt.Sprint(helmchart.Dig(got, "scopes")), fmt.Sprint(helmchart.Dig(want, "scopes")); g != w {
		t.Errorf("%s: scopes %s in the chart, %s in components/", name, g, w)
	}
	gm, wm := metadataOf(got), metadataOf(want)
	for _, k := range sortedUnion(gm, wm) {
		g, inChart := gm[k]
		w, inFile := wm[k]
		switch {
		case !inChart:
			t.Errorf("%s: metadata %s is set in components/ (%q) but not by the chart", name, k, w)
		case !inFile:
			t.Errorf("%s: metadata %s is set by the chart (%q) but not in components/", name, k, g)
		case g != w && !deploymentSpecific[k]:
			t.Errorf("%s: metadata %s is %q in the chart, %q in components/", name, k, g, w)
		}
	}
}

// sameSpec compares spec and scopes, which are everything but the name and labels.
func sameSpec(t *testing.T, file string, got, want helmchart.Object) {
	t.Helper()
	for _, key := range []string{"spec", "scopes"} {
		if g, w := got[key], want[key]; !reflect.DeepEqual(g, w) {
			t.Errorf("%s: %s differs from the chart's %s:\n chart: %v\n file:  %v", file, key, got, g, w)
		}
	}
}

// metadataOf maps name to value; a secretKeyRef reads as "secret:<key>".
func metadataOf(o helmchart.Object) map[string]string {
	out := map[string]string{}
	for _, m := range helmchart.AsList(helmchart.Dig(o, "spec", "metadata")) {
		name := helmchart.DigString(m, "name")
		if ref := helmchart.Dig(m, "secretKeyRef"); ref != nil {
			out[name] = "secret:" + helmchart.DigString(m, "secretKeyRef", "key")
			continue
		}
		out[name] = fmt.Sprint(helmchart.Dig(m, "value"))
	}
	return out
}

func sortedUnion(a, b map[string]string) []string {
	var keys []string
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

func decodeFile(t *testing.T, path string) []helmchart.Object {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := helmchart.DecodeObjects(raw)
	if err != nil || len(objs) == 0 {
		t.Fatalf("%s: %d objects (%v)", path, len(objs), err)
	}
	return objs
}
