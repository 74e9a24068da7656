package flows

// docs/asyncapi.yaml is the event contract between the two apps, and this test holds both
// to it through a real daprd and Redis: the envelope the publisher's event becomes in the
// broker validates against the document's schema, the worker handles every example the
// document gives, and it answers DROP to every envelope in testdata/asyncapi-invalid.json,
// each of which the schema must reject (or the case proves nothing).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/taskevents/taskevents/e2e/internal/suite"
	"github.com/taskevents/taskevents/tools/harness"
)

// asyncAPI is the part of docs/asyncapi.yaml the test reads.
type asyncAPI struct {
	AsyncAPI string `yaml:"asyncapi"`
	Channels map[string]struct {
		Address string `yaml:"address"`
	} `yaml:"channels"`
	Components struct {
		Messages map[string]struct {
			Name        string `yaml:"name"`
			ContentType string `yaml:"contentType"`
			Examples    []struct {
				Name    string         `yaml:"name"`
				Payload map[string]any `yaml:"payload"`
			} `yaml:"examples"`
		} `yaml:"messages"`
	} `yaml:"components"`
}

func TestAsyncAPI(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(suite.Root, "docs", "asyncapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc asyncAPI
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("docs/asyncapi.yaml: %v", err)
	}
	if !strings.HasPrefix(doc.AsyncAPI, "3.") {
		t.Fatalf("docs/asyncapi.yaml is AsyncAPI %q, want 3.x", doc.AsyncAPI)
	}
	if got, want := doc.Channels["taskEvents"].Address, suite.Contract.Topic; got != want {
		t.Errorf("the document's channel is %q, but subscriptions/task-events.yaml subscribes to %q", got, want)
	}
	msg := doc.Components.Messages["taskCreated"]
	if msg.Name != "task.created" || msg.ContentType != "application/cloudevents+json" || len(msg.Examples) == 0 {
		t.Fatalf("components.messages.taskCreated = %+v: want task.created, application/cloudevents+json, examples", msg)
	}
	envelope := compileEnvelopeSchema(t, raw)

	var invalid struct {
		Cases map[string]map[string]any `json:"cases"`
	}
	suite.MustJSON(t, suite.MustRead(t, filepath.Join(suite.Root, "e2e", "flows", "testdata", "asyncapi-invalid.json")), &invalid)
	if len(invalid.Cases) < 5 {
		t.Fatalf("testdata/asyncapi-invalid.json has %d cases", len(invalid.Cases))
	}
	for _, ex := range msg.Examples {
		if err := envelope.Validate(jsonValue(t, ex.Payload)); err != nil {
			t.Errorf("example %q does not validate against its own schema: %v", ex.Name, err)
		}
	}
	for name, c := range invalid.Cases {
		if envelope.Validate(jsonValue(t, c)) == nil {
			t.Errorf("invalid case %q validates against the schema; it proves nothing about the worker", name)
		}
	}

	sys := suite.StartSystem(t, "redis", harness.SystemOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	t.Run("publisher-publishes-the-schema", func(t *testing.T) {
		c, r, err := suite.CreateTask(ctx, sys.Publisher, "Milch & <Brot> — 🥛")
		if err != nil || r.Status != http.StatusAccepted {
			t.Fatalf("POST /tasks = %d %s (%v)", r.Status, r.Body, err)
		}
		stored := streamEnvelope(ctx, t, sys.Broker.Overrides["redisHost"], c.ID)
		if err := envelope.Validate(jsonValue(t, stored)); err != nil {
			t.Errorf("the envelope in the broker does not match docs/asyncapi.yaml: %v\n%s", err, stored)
		}
		t.Logf("validated %s", stored)
	})

	// Each envelope goes through the publisher's daprd as a pre-built CloudEvent, which
	// daprd keeps as it is (id, type and data included) and delivers to the worker.
	deliver := func(t *testing.T, envelope map[string]any) harness.WorkerEvent {
		t.Helper()
		id := uuid.NewString()
		envelope["id"] = id
		body := strings.ReplaceAll(string(jsonBytes(t, envelope)), "TASK_ID", uuid.NewString())
		r, err := suite.Post(ctx, sys.PublisherSidecar.HTTPURL+"/v1.0/publish/pubsub/"+suite.Contract.Topic,
			"application/cloudevents+json", body, nil)
		if err != nil || r.Status != http.StatusNoContent {
			t.Fatalf("publish through daprd = %d %s (%v)", r.Status, r.Body, err)
		}
		w := sys.Workers[0]
		if _, err := w.WaitForLine(ctx, func(l string) bool { return strings.Contains(l, id) && strings.Contains(l, `"outcome"`) }); err != nil {
			t.Fatalf("the worker never answered event %s: %v\n%s", id, err, w.Tail(10))
		}
		for _, msg := range []string{"EVENT RECEIVED", "EVENT REJECTED"} {
			for _, e := range harness.Events(w.Lines(), msg) {
				if e.EventID == id {
					return e
				}
			}
		}
		t.Fatalf("no EVENT RECEIVED or EVENT REJECTED line for %s:\n%s", id, w.Tail(10))
		return harness.WorkerEvent{}
	}
	for _, ex := range msg.Examples {
		t.Run("worker-handles/"+ex.Name, func(t *testing.T) {
			payload := jsonValue(t, ex.Payload).(map[string]any)
			// A fresh task id per run: the worker dedupes by event id, not by task.
			payload["data"].(map[string]any)["task_id"] = "TASK_ID"
			if e := deliver(t, payload); e.Outcome != "SUCCESS" || e.Duplicate {
				t.Errorf("outcome %s (duplicate=%v, reason %q), want SUCCESS for a valid example", e.Outcome, e.Duplicate, e.Reason)
			}
		})
	}
	for name, c := range invalid.Cases {
		t.Run("worker-drops/"+name, func(t *testing.T) {
			if e := deliver(t, c); e.Outcome != "DROP" {
				t.Errorf("outcome %s (reason %q), want DROP for an envelope the contract rejects", e.Outcome, e.Reason)
			}
		})
	}
}

// compileEnvelopeSchema compiles components.schemas.TaskCreatedEnvelope, with its $refs
// resolved inside the document, as JSON Schema draft-07 (the document's schemaFormat).
func compileEnvelopeSchema(t *testing.T, raw []byte) *jsonschema.Schema {
	t.Helper()
	var tree any
	if err := yaml.Unmarshal(raw, &tree); err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft7)
	if err := c.AddResource("asyncapi.json", jsonValue(t, tree)); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("asyncapi.json#/components/schemas/TaskCreatedEnvelope")
	if err != nil {
		t.Fatalf("compiling TaskCreatedEnvelope: %v", err)
	}
	return s
}

// streamEnvelope finds, in the Redis stream daprd publishes to, the CloudEvent with id.
func streamEnvelope(ctx context.Context, t *testing.T, addr, id string) map[string]any {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	entries, err := rdb.XRange(ctx, suite.Contract.Topic, "-", "+").Result()
	if err != nil {
		t.Fatalf("XRANGE: %v", err)
	}
	for _, e := range entries {
		data, _ := e.Values["data"].(string)
		var ce map[string]any
		if json.Unmarshal([]byte(data), &ce) == nil && ce["id"] == id {
			return ce
		}
	}
	t.Fatalf("no entry with CloudEvent id %s among %d in the stream", id, len(entries))
	return nil
}

// jsonValue turns a decoded YAML or Go value into what encoding/json with UseNumber gives,
// the form the schema validator expects.
func jsonValue(t *testing.T, v any) any {
	t.Helper()
	out, err := jsonschema.UnmarshalJSON(bytes.NewReader(jsonBytes(t, v)))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func jsonBytes(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(fmt.Errorf("json: %w", err))
	}
	return b
}
