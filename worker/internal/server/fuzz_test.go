package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/net/http/httpguts"

	"github.com/taskevents/taskevents/kit/logging"
	"github.com/taskevents/taskevents/worker/internal/bulk"
	"github.com/taskevents/taskevents/worker/internal/dedupe"
	"github.com/taskevents/taskevents/worker/internal/handler"
	"github.com/taskevents/taskevents/worker/internal/metrics"
	"github.com/taskevents/taskevents/worker/internal/server"
	"github.com/taskevents/taskevents/worker/internal/taskevent"
	"github.com/taskevents/taskevents/worker/internal/taskevent/eventtest"
)

// FuzzDeliverEvent drives the whole server (server.New with the in-memory dedupe store
// and a handler that accepts every task) with any delivery to /events/todo: structured or
// binary mode, any Content-Type, body and dapr-api-token, within and past MAX_EVENT_BYTES.
// The property: always 200 with a status daprd understands; DROP for every delivery the
// parser rejects or that is too large, SUCCESS for the rest (the handler never fails, so
// RETRY would mean a malformed message is redelivered forever); 401 problem+json, and no
// delivery, for a wrong or missing token; one JSON log line per request, without the token.
func FuzzDeliverEvent(f *testing.F) {
	const (
		token    = "fuzz-app-token-5f2c9e"
		maxBytes = 4 << 10 // small, so the fuzzer reaches the limit too
	)
	// Entries of a batch log from several goroutines.
	var logs logging.Buffer
	calls := 0
	srv := server.New(server.Deps{
		Logger: zerolog.New(&logs),
		Handler: handler.Func(func(_ context.Context, _ taskevent.Event) error {
			calls++
			return nil
		}),
		Ledger:         dedupe.New(1000, time.Hour, time.Now),
		Metrics:        metrics.New(),
		APIToken:       token,
		MaxEventBytes:  maxBytes,
		HandlerTimeout: 5 * time.Second,
	})

	taskJSON := eventtest.TaskJSON
	for _, s := range []struct {
		contentType string
		binary      bool
		ceType      string
		body        string
		oversize    bool
		token       string
	}{
		{"application/cloudevents+json", false, "", eventtest.DaprdEnvelope, false, token},
		{"application/cloudevents+json", false, "", eventtest.DaprdEnvelope, true, token},
		{"application/cloudevents+json", false, "", eventtest.DaprdEnvelope, false, ""},
		{"application/cloudevents+json", false, "", eventtest.DaprdEnvelope, false, token + "x"},
		{"application/cloudevents+json", false, "", strings.Replace(eventtest.DaprdEnvelope, `"type":"task.created"`, `"type":"com.dapr.event.sent"`, 1), false, token},
		{"application/cloudevents+json", false, "", `{"id":"a","specversion":"1.0","source":"s","type":"task.created","datacontenttype":"text/plain","data":"{\"task_id\":\"` + eventtest.TaskID + `\",\"title\":\"t\"}"}`, false, token},
		{"application/cloudevents+json", false, "", `{"id":"a","specversion":"1.0","source":"Dapr","type":"com.dapr.event.sent","datacontenttype":"application/octet-stream","data_base64":"` + base64.StdEncoding.EncodeToString([]byte(taskJSON)) + `"}`, false, token},
		{"application/cloudevents+json", false, "", `{"specversion":"1.0","my_ext":1}`, false, token},
		{"application/cloudevents+json", false, "", `{"specversion":"0.3","id":"a","source":"s","type":"task.created","datacontentencoding":"base64","data":"e30="}`, false, token},
		{"application/cloudevents+json", false, "", `not json`, false, token},
		{"application/cloudevents-batch+json", false, "", `[]`, false, token},
		{"application/json", true, "task.created", taskJSON, false, token},
		{"application/json", true, "task.created", taskJSON, true, token},
		{"text/plain", true, "com.dapr.event.sent", taskJSON, false, token},
		{"", true, "", ``, false, token},
	} {
		f.Add(s.contentType, s.binary, s.ceType, []byte(s.body), s.oversize, s.token)
	}
	f.Fuzz(func(t *testing.T, contentType string, binary bool, ceType string, body []byte, oversize bool, sent string) {
		// net/http's server refuses header values with control characters itself.
		for _, v := range []string{contentType, ceType, sent} {
			if !httpguts.ValidHeaderFieldValue(v) {
				return
			}
		}
		if oversize {
			body = append(body, bytes.Repeat([]byte{' '}, maxBytes)...)
		}
		req := httptest.NewRequest(http.MethodPost, "/events/todo", bytes.NewReader(body))
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if binary {
			req.Header.Set("Ce-Specversion", "1.0")
			req.Header.Set("Ce-Id", "id-1")
			req.Header.Set("Ce-Source", "src")
			req.Header.Set("Ce-Type", ceType)
		}
		if sent != "" {
			req.Header.Set(server.TokenHeader, sent)
		}
		logs.Reset()
		callsBefore := calls
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if bytes.Contains(logs.Bytes(), []byte(token)) {
			t.Fatalf("the log holds the API token: %s", logs.Bytes())
		}

		if sent != token {
			line := onlyLogLine(t, logs.Bytes())
			if rec.Code != http.StatusUnauthorized || rec.Header().Get("Content-Type") != "application/problem+json" {
				t.Fatalf("token %q: %d %q, want 401 problem+json", sent, rec.Code, rec.Header().Get("Content-Type"))
			}
			if calls != callsBefore || line["message"] != "unauthorized request" {
				t.Fatalf("token %q: the delivery went through (handler calls %d → %d, log %v)", sent, callsBefore, calls, line)
			}
			return
		}

		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("%d %q, want 200 application/json: %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
		}
		if mt, _, _ := mime.ParseMediaType(contentType); len(body) <= maxBytes && !binary && mt != "application/cloudevents+json" {
			if _, err := bulk.Parse(body); !errors.Is(err, bulk.ErrNotBatch) {
				// A bulk delivery: FuzzDeliverBatch holds its answers.
				var answer bulk.Answer
				if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil || answer.Statuses == nil {
					t.Fatalf("bulk delivery answered %q (%v), want a statuses list", rec.Body, err)
				}
				return
			}
		}
		line := onlyLogLine(t, logs.Bytes())
		var reply struct{ Status string }
		if err := json.Unmarshal(rec.Body.Bytes(), &reply); err != nil {
			t.Fatalf("reply %q: %v", rec.Body, err)
		}
		want := "SUCCESS"
		_, perr := taskevent.Parse(req.Header, body)
		switch {
		case len(body) > maxBytes:
			want = "DROP"
		case perr != nil:
			want = "DROP"
		case !binary && !json.Valid(body):
			t.Fatalf("the parser accepted a structured-mode body that is not JSON: %q", body)
		}
		if reply.Status != want {
			t.Fatalf("status %s, want %s (parse error: %v) for Content-Type %q, binary %v, body %q",
				reply.Status, want, perr, contentType, binary, logging.Truncate(string(body), 200))
		}
		if want == "DROP" && calls != callsBefore {
			t.Fatalf("DROP, but the handler ran")
		}
		if line["outcome"] != want {
			t.Fatalf("log line %v, want outcome %s", line, want)
		}
	})
}

// onlyLogLine checks that the request logged exactly one line, and that it is JSON.
func onlyLogLine(t *testing.T, logs []byte) map[string]any {
	t.Helper()
	lines := bytes.Split(bytes.TrimSuffix(logs, []byte("\n")), []byte("\n"))
	if len(lines) != 1 {
		t.Fatalf("want one log line, got %d:\n%s", len(lines), logs)
	}
	var m map[string]any
	if err := json.Unmarshal(lines[0], &m); err != nil {
		t.Fatalf("log line is not JSON: %v: %s", err, lines[0])
	}
	return m
}
