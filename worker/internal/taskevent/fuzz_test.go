package taskevent

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/binding/format"
)

// FuzzParseEvent: Parse never panics, and returns either an event that
// satisfies every validation rule or an *Error with a stage and a reason (which
// the server answers with DROP). Malformed input is never accepted: a
// structured-mode body that is not JSON, or a batch, is always an *Error.
func FuzzParseEvent(f *testing.F) {
	seeds := []struct {
		contentType string
		binary      bool
		ceType      string
		body        string
	}{
		{"application/cloudevents+json", false, "", daprdEnvelope},
		{"application/cloudevents+json", false, "", strings.Replace(daprdEnvelope, `"type":"task.created"`, `"type":"com.dapr.event.sent"`, 1)},
		{"application/cloudevents+json", false, "", `{"id":"a","specversion":"1.0","source":"s","type":"task.created","datacontenttype":"text/plain","data":"{\"task_id\":\"` + taskID + `\",\"title\":\"t\"}"}`},
		{"application/cloudevents+json", false, "", `{"id":"a","specversion":"1.0","source":"Dapr","type":"com.dapr.event.sent","datacontenttype":"application/octet-stream","data_base64":"` + base64.StdEncoding.EncodeToString([]byte(taskJSON)) + `"}`},
		{"application/cloudevents+json", false, "", `{"specversion":"1.0","my_ext":1}`},
		{"application/cloudevents+json", false, "", `{"specversion":"0.3","id":"a","source":"s","type":"task.created","datacontentencoding":"base64","data":"e30="}`},
		{"application/cloudevents+json", false, "", `not json`},
		{"application/cloudevents-batch+json", false, "", `[]`},
		{"application/json", true, "task.created", taskJSON},
		{"text/plain", true, "com.dapr.event.sent", taskJSON},
		{"", true, "", ``},
		// Long inputs that SDK errors quote: the logged reason must stay bounded.
		{"application/cloudevents+json", false, "", `{"specversion":"1.0","id":"a","source":"s","type":"` + strings.Repeat("x", 2000) + `","data":{"task_id":"x","title":"x"}}`},
		{"application/cloudevents+json", false, "", `{"specversion":"1.0","id":"a","source":"s","type":"t","time":"` + strings.Repeat("x", 2000) + `"}`},
		{"application/json", true, strings.Repeat("x", 2000), strings.Repeat("y", 2000)},
	}
	for _, s := range seeds {
		f.Add(s.contentType, s.binary, s.ceType, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, contentType string, binary bool, ceType string, body []byte) {
		h := http.Header{}
		h.Set("Content-Type", contentType)
		if binary {
			h.Set("Ce-Specversion", "1.0")
			h.Set("Ce-Id", "id-1")
			h.Set("Ce-Source", "src")
			h.Set("Ce-Type", ceType)
		}
		ev, err := Parse(h, body)
		structured := format.Lookup(contentType) != nil || h.Get("Ce-Specversion") == ""
		if err == nil && structured && !json.Valid(body) {
			t.Fatalf("accepted a structured-mode body that is not JSON: %q", body)
		}
		if err == nil && format.Lookup(contentType) == format.JSONBatch {
			t.Fatalf("accepted a batch: %q", body)
		}
		if err != nil {
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("error %v is %T, want *Error", err, err)
			}
			if perr.Stage != StageEnvelope && perr.Stage != StageData {
				t.Fatalf("error %v has stage %d", err, perr.Stage)
			}
			if perr.Reason == "" {
				t.Fatalf("error %v has no reason", err)
			}
			if n := len(err.Error()); n > 1024 {
				t.Fatalf("a %d-byte error message (logged as the reason) for a %d-byte body: %.200s…", n, len(body), err)
			}
			if ev != (Event{}) {
				t.Fatalf("error %v came with a non-zero event %+v", err, ev)
			}
			return
		}
		if ev.ID == "" || ev.Source == "" || ev.Type == "" {
			t.Fatalf("accepted an event without id/source/type: %+v", ev)
		}
		if ev.EventType != TypeTaskCreated {
			t.Fatalf("accepted event type %q", ev.EventType)
		}
		if ev.Type != TypeTaskCreated && (ev.Type != TypeDaprDefault || ev.Task.EventType != TypeTaskCreated) {
			t.Fatalf("type %q / data.event_type %q resolved to %q", ev.Type, ev.Task.EventType, ev.EventType)
		}
		if !IsUUID(ev.Task.TaskID) {
			t.Fatalf("accepted task_id %q", ev.Task.TaskID)
		}
		if strings.TrimSpace(ev.Task.Title) == "" {
			t.Fatalf("accepted blank title %q", ev.Task.Title)
		}
	})
}
