package taskevent

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/taskevents/taskevents/worker/internal/taskevent/eventtest"
)

// Short names for the shared fixtures (eventtest), used throughout this package's tests.
const (
	taskID        = eventtest.TaskID
	eventID       = eventtest.EventID
	tp            = eventtest.TraceParent
	daprdEnvelope = eventtest.DaprdEnvelope
	taskJSON      = eventtest.TaskJSON
)

func structured() http.Header {
	return http.Header{"Content-Type": {"application/cloudevents+json"}}
}

func replace(t testing.TB, pairs ...string) string {
	t.Helper()
	return eventtest.Edit(t, pairs...)
}

func TestParse(t *testing.T) {
	binary := func(extra map[string]string) http.Header {
		h := http.Header{}
		h.Set("Content-Type", "application/json")
		h.Set("Ce-Specversion", "1.0")
		h.Set("Ce-Id", eventID)
		h.Set("Ce-Source", "task-api")
		h.Set("Ce-Type", "task.created")
		h.Set("Ce-Topic", "task-events")
		h.Set("Ce-Pubsubname", "pubsub")
		h.Set("Ce-Traceparent", tp)
		for k, v := range extra {
			if v == "" {
				h.Del(k)
				continue
			}
			h[k] = []string{v} // not canonicalised, as a proxy could deliver it
		}
		return h
	}
	tests := []struct {
		name   string
		header http.Header
		body   string
		// wantStage 0 means success.
		wantStage  Stage
		wantReason string
		wantType   string // resolved EventType on success
		wantMetaID string // Meta.ID, on success and failure
	}{
		{name: "daprd application/json", header: structured(), body: daprdEnvelope, wantType: "task.created", wantMetaID: eventID},
		{name: "json with charset", header: structured(), body: replace(t, `"datacontenttype":"application/json"`, `"datacontenttype":"application/json; charset=utf-8"`), wantType: "task.created", wantMetaID: eventID},
		{name: "text/plain JSON string data (publisher forgot Content-Type)", header: structured(),
			body: replace(t, `"data":`+taskJSON, `"data":"{\"event_type\":\"task.created\",\"task_id\":\"`+taskID+`\",\"title\":\"x\"}"`,
				`"datacontenttype":"application/json"`, `"datacontenttype":"text/plain"`),
			wantType: "task.created", wantMetaID: eventID},
		{name: "data_base64 octet-stream (rawPayload subscription)", header: structured(),
			body: `{"id":"` + eventID + `","specversion":"1.0","datacontenttype":"application/octet-stream","source":"Dapr","type":"com.dapr.event.sent","topic":"task-events","pubsubname":"pubsub","data_base64":"` +
				base64.StdEncoding.EncodeToString([]byte(taskJSON)) + `"}`,
			wantType: "task.created", wantMetaID: eventID},
		{name: "binary mode", header: binary(nil), body: taskJSON, wantType: "task.created", wantMetaID: eventID},
		{name: "binary mode, dapr default type", header: binary(map[string]string{"Ce-Type": "com.dapr.event.sent"}), body: taskJSON, wantType: "task.created", wantMetaID: eventID},
		{name: "structured with plain JSON content type (curl)", header: http.Header{"Content-Type": {"application/json"}}, body: daprdEnvelope, wantType: "task.created", wantMetaID: eventID},
		{name: "structured wins over stray ce- headers", header: binary(map[string]string{"Content-Type": "application/cloudevents+json", "Ce-Id": "other"}), body: daprdEnvelope, wantType: "task.created", wantMetaID: eventID},
		{name: "no content type", header: http.Header{}, body: daprdEnvelope, wantType: "task.created", wantMetaID: eventID},
		{name: "tracestate empty and absent", header: structured(), body: replace(t, `"tracestate":"",`, ``), wantType: "task.created", wantMetaID: eventID},
		{name: "time with offset", header: structured(), body: replace(t, `"2026-11-27T16:00:00Z"`, `"2026-11-27T17:00:00+01:00"`), wantType: "task.created", wantMetaID: eventID},
		{name: "time with fraction", header: structured(), body: replace(t, `"2026-11-27T16:00:00Z"`, `"2026-11-27T16:00:00.123456789Z"`), wantType: "task.created", wantMetaID: eventID},
		{name: "extra data fields ignored", header: structured(), body: replace(t, `"title":"Learn Dapr pub/sub"}`, `"title":"x","priority":3}`), wantType: "task.created", wantMetaID: eventID},
		{name: "dapr default type uses data.event_type", header: structured(), body: replace(t, `"type":"task.created"`, `"type":"com.dapr.event.sent"`), wantType: "task.created", wantMetaID: eventID},
		{name: "expiration extension", header: structured(), body: replace(t, `"topic":`, `"expiration":"2030-01-01T00:00:00Z","topic":`), wantType: "task.created", wantMetaID: eventID},

		{name: "not JSON", header: structured(), body: `EVENT RECEIVED`, wantStage: StageEnvelope, wantReason: "not valid JSON"},
		{name: "empty body", header: structured(), body: ``, wantStage: StageEnvelope, wantReason: "not valid JSON"},
		{name: "trailing garbage", header: structured(), body: daprdEnvelope + `}`, wantStage: StageEnvelope, wantReason: "not valid JSON", wantMetaID: ""},
		{name: "JSON array", header: structured(), body: `[` + daprdEnvelope + `]`, wantStage: StageEnvelope, wantReason: "not a CloudEvent"},
		{name: "missing specversion", header: structured(), body: replace(t, `"specversion":"1.0",`, ``), wantStage: StageEnvelope, wantReason: "not a CloudEvent", wantMetaID: eventID},
		{name: "unknown specversion", header: structured(), body: replace(t, `"specversion":"1.0"`, `"specversion":"2.0"`), wantStage: StageEnvelope, wantReason: "not a CloudEvent", wantMetaID: eventID},
		{name: "invalid extension name", header: structured(), body: replace(t, `"topic":`, `"my_ext":"x","topic":`), wantStage: StageEnvelope, wantReason: "not a CloudEvent", wantMetaID: eventID},
		{name: "bad time", header: structured(), body: replace(t, `"2026-11-27T16:00:00Z"`, `"yesterday"`), wantStage: StageEnvelope, wantReason: "not a CloudEvent", wantMetaID: eventID},
		{name: "empty id", header: structured(), body: replace(t, `"id":"`+eventID+`"`, `"id":""`), wantStage: StageEnvelope, wantReason: "invalid CloudEvent"},
		{name: "missing id", header: structured(), body: replace(t, `"id":"`+eventID+`",`, ``), wantStage: StageEnvelope, wantReason: "invalid CloudEvent"},
		{name: "empty source", header: structured(), body: replace(t, `"source":"task-api"`, `"source":""`), wantStage: StageEnvelope, wantReason: "not a CloudEvent", wantMetaID: eventID},
		{name: "empty type", header: structured(), body: replace(t, `"type":"task.created"`, `"type":""`), wantStage: StageEnvelope, wantReason: "invalid CloudEvent", wantMetaID: eventID},
		{name: "batch", header: http.Header{"Content-Type": {"application/cloudevents-batch+json"}}, body: `[` + daprdEnvelope + `]`, wantStage: StageEnvelope, wantReason: "batched"},
		{name: "binary invalid extension name", header: binary(map[string]string{"Ce-My_ext": "x"}), body: taskJSON, wantStage: StageEnvelope, wantReason: "binary-mode", wantMetaID: eventID},
		{name: "binary missing id", header: binary(map[string]string{"Ce-Id": ""}), body: taskJSON, wantStage: StageEnvelope, wantReason: "invalid CloudEvent"},
		{name: "binary bad specversion", header: binary(map[string]string{"Ce-Specversion": "9"}), body: taskJSON, wantStage: StageEnvelope, wantReason: "binary-mode", wantMetaID: eventID},

		{name: "unknown type", header: structured(), body: replace(t, `"type":"task.created"`, `"type":"task.deleted"`), wantStage: StageData, wantReason: `unknown event type "task.deleted"`, wantMetaID: eventID},
		{name: "dapr default type without data.event_type", header: structured(), body: replace(t, `"type":"task.created"`, `"type":"com.dapr.event.sent"`, `"event_type":"task.created",`, ``), wantStage: StageData, wantReason: `unknown event type ""`, wantMetaID: eventID},
		{name: "dapr default type with unknown data.event_type", header: structured(), body: replace(t, `"type":"task.created"`, `"type":"com.dapr.event.sent"`, `"event_type":"task.created"`, `"event_type":"task.updated"`), wantStage: StageData, wantReason: `unknown event type "task.updated"`, wantMetaID: eventID},
		{name: "invalid task_id", header: structured(), body: replace(t, taskID, "not-a-uuid"), wantStage: StageData, wantReason: "not a UUID", wantMetaID: eventID},
		{name: "task_id without dashes", header: structured(), body: replace(t, taskID, strings.ReplaceAll(taskID, "-", "")), wantStage: StageData, wantReason: "not a UUID", wantMetaID: eventID},
		{name: "task_id urn form", header: structured(), body: replace(t, taskID, "urn:uuid:"+taskID), wantStage: StageData, wantReason: "not a UUID", wantMetaID: eventID},
		{name: "task_id missing", header: structured(), body: replace(t, `"task_id":"`+taskID+`",`, ``), wantStage: StageData, wantReason: "not a UUID", wantMetaID: eventID},
		{name: "task_id a number", header: structured(), body: replace(t, `"task_id":"`+taskID+`"`, `"task_id":42`), wantStage: StageData, wantReason: "not a task JSON object", wantMetaID: eventID},
		{name: "blank title", header: structured(), body: replace(t, `"title":"Learn Dapr pub/sub"`, `"title":" \t\n"`), wantStage: StageData, wantReason: "title is blank", wantMetaID: eventID},
		{name: "missing title", header: structured(), body: replace(t, `,"title":"Learn Dapr pub/sub"`, ``), wantStage: StageData, wantReason: "title is blank", wantMetaID: eventID},
		{name: "data a plain string", header: structured(), body: replace(t, `"data":`+taskJSON, `"data":"hello"`, `"datacontenttype":"application/json"`, `"datacontenttype":"text/plain"`), wantStage: StageData, wantReason: "not a task JSON object", wantMetaID: eventID},
		{name: "data an array", header: structured(), body: replace(t, `"data":`+taskJSON, `"data":[1,2]`), wantStage: StageData, wantReason: "not a task JSON object", wantMetaID: eventID},
		{name: "data null", header: structured(), body: replace(t, `"data":`+taskJSON, `"data":null`), wantStage: StageData, wantMetaID: eventID},
		{name: "no data", header: structured(), body: replace(t, `"data":`+taskJSON+`,`, ``), wantStage: StageData, wantReason: "not a task JSON object", wantMetaID: eventID},
		{name: "binary body not JSON", header: binary(nil), body: `hello`, wantStage: StageData, wantReason: "not a task JSON object", wantMetaID: eventID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := Parse(tt.header, []byte(tt.body))
			if tt.wantStage == 0 {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if ev.EventType != tt.wantType {
					t.Errorf("EventType = %q, want %q", ev.EventType, tt.wantType)
				}
				if ev.ID != tt.wantMetaID || ev.Source == "" || ev.Task.TaskID != taskID || ev.Task.Title == "" {
					t.Errorf("event = %+v", ev)
				}
				if ev.Topic != "task-events" || ev.PubsubName != "pubsub" {
					t.Errorf("topic/pubsubname = %q/%q", ev.Topic, ev.PubsubName)
				}
				if want := "pubsub/task-events/" + eventID; ev.Key() != want {
					t.Errorf("Key() = %q, want %q", ev.Key(), want)
				}
				return
			}
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("Parse error = %v (%T), want *Error", err, err)
			}
			if perr.Stage != tt.wantStage {
				t.Errorf("Stage = %d, want %d (err %v)", perr.Stage, tt.wantStage, err)
			}
			if !strings.Contains(err.Error(), tt.wantReason) {
				t.Errorf("error %q does not contain %q", err, tt.wantReason)
			}
			if perr.Meta.ID != tt.wantMetaID {
				t.Errorf("Meta.ID = %q, want %q", perr.Meta.ID, tt.wantMetaID)
			}
		})
	}
}

func TestParseMeta(t *testing.T) {
	ev, err := Parse(structured(), []byte(daprdEnvelope))
	if err != nil {
		t.Fatal(err)
	}
	want := Meta{ID: eventID, Source: "task-api", Type: "task.created", Topic: "task-events", PubsubName: "pubsub", Traceparent: tp}
	if ev.Meta != want {
		t.Errorf("Meta = %+v, want %+v", ev.Meta, want)
	}
	if ev.DataContentType != "application/json" || ev.Task.EventType != "task.created" || ev.Task.Title != "Learn Dapr pub/sub" {
		t.Errorf("event = %+v", ev)
	}

	// Headers fill in what the envelope lacks (daprd sends both).
	h := structured()
	h.Set("pubsubname", "from-header")
	h.Set("traceparent", "00-header-01")
	ev, err = Parse(h, []byte(replace(t, `"pubsubname":"pubsub",`, ``, `,"traceparent":"`+tp+`"`, ``)))
	if err != nil {
		t.Fatal(err)
	}
	if ev.PubsubName != "from-header" || ev.Traceparent != "00-header-01" {
		t.Errorf("meta from headers = %+v", ev.Meta)
	}
}

func TestPeek(t *testing.T) {
	tests := []struct {
		name     string
		header   http.Header
		body     string
		wantID   string
		wantTask string
	}{
		{"valid", structured(), daprdEnvelope, eventID, taskID},
		{"invalid extension still readable", structured(), replace(t, `"topic":`, `"my_ext":1,"topic":`), eventID, taskID},
		{"text/plain data", structured(), `{"id":"a","data":"{\"task_id\":\"` + taskID + `\"}"}`, "a", taskID},
		{"data_base64", structured(), `{"id":"a","data_base64":"` + base64.StdEncoding.EncodeToString([]byte(taskJSON)) + `"}`, "a", taskID},
		{"bad base64", structured(), `{"id":"a","data_base64":"!!"}`, "a", ""},
		{"wrong field types", structured(), `{"id":7,"type":["x"],"data":{"task_id":5}}`, "", ""},
		{"binary", http.Header{"Ce-Specversion": {"1.0"}, "Ce-Id": {"b"}}, taskJSON, "b", taskID},
		{"garbage", structured(), "\x00\xff", "", ""},
		{"nil body", structured(), "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			meta, task := Peek(tt.header, []byte(tt.body))
			if meta.ID != tt.wantID || task.TaskID != tt.wantTask {
				t.Errorf("Peek = %+v, %+v; want id %q task %q", meta, task, tt.wantID, tt.wantTask)
			}
		})
	}

	long := strings.Repeat("é", 300)
	meta, _ := Peek(structured(), []byte(`{"id":"`+long+`"}`))
	if len(meta.ID) > maxPeekField+len("…") || !strings.HasSuffix(meta.ID, "…") || !strings.HasPrefix(meta.ID, "éé") {
		t.Errorf("long id not truncated cleanly: %d bytes", len(meta.ID))
	}
}

func TestIsUUID(t *testing.T) {
	for s, want := range map[string]bool{
		taskID:                                 true,
		strings.ToUpper(taskID):                true,
		"":                                     false,
		"{" + taskID + "}":                     false,
		strings.ReplaceAll(taskID, "-", ""):    false,
		"3f0c8a51-6b7e-4d2a-9c1e-2b5d7f9a0c1g": false,
		"3f0c8a51+6b7e-4d2a-9c1e-2b5d7f9a0c11": false,
	} {
		if got := IsUUID(s); got != want {
			t.Errorf("IsUUID(%q) = %v, want %v", s, got, want)
		}
	}
}
