package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

type problemBody struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

func decodeProblem(t *testing.T, code int, header http.Header, body string) problemBody {
	t.Helper()
	if ct := header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type = %q, body %q", ct, body)
	}
	var p problemBody
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatalf("problem %q: %v", body, err)
	}
	if p.Status != code || p.Title == "" || p.Detail == "" || p.Type == "" {
		t.Fatalf("problem = %+v (code %d)", p, code)
	}
	return p
}

func TestAuth(t *testing.T) {
	tests := []struct {
		name      string
		token     string // APP_API_TOKEN
		header    string // dapr-api-token sent ("" = none)
		method    string
		path      string
		body      string
		wantCode  int
		wantCalls int
	}{
		{"no token configured, no header", "", "", http.MethodPost, "/events/todo", daprdEnvelope, 200, 1},
		{"no token configured, any header", "", "whatever", http.MethodPost, "/events/todo", daprdEnvelope, 200, 1},
		{"right token", token, token, http.MethodPost, "/events/todo", daprdEnvelope, 200, 1},
		{"missing token", token, "", http.MethodPost, "/events/todo", daprdEnvelope, 401, 0},
		{"wrong token", token, "tok-wrong", http.MethodPost, "/events/todo", daprdEnvelope, 401, 0},
		{"token prefix", token, token[:5], http.MethodPost, "/events/todo", daprdEnvelope, 401, 0},
		{"token with suffix", token, token + "x", http.MethodPost, "/events/todo", daprdEnvelope, 401, 0},
		{"dead letters need it too", token, "", http.MethodPost, "/events/deadletter", daprdEnvelope, 401, 0},
		{"unknown event path needs it too", token, "", http.MethodPost, "/events/other", "", 401, 0},
		{"wrong method on event path needs it too", token, "", http.MethodGet, "/events/todo", "", 401, 0},
		{"healthz stays open", token, "", http.MethodGet, "/healthz", "", 200, 0},
		{"readyz stays open", token, "", http.MethodGet, "/readyz", "", 200, 0},
		{"admin needs the token", token, "", http.MethodGet, "/admin/deadletters", "", 401, 0},
		{"metrics are not on the event port", "", "", http.MethodGet, "/metrics", "", 404, 0},
		{"right token, unknown event path", token, token, http.MethodPost, "/events/other", "", 404, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil, func(o *Deps) { o.APIToken = tt.token })
			header := cloudEventHeader()
			if tt.header != "" {
				header.Set(TokenHeader, tt.header)
			}
			rec := h.do(tt.method, tt.path, header, tt.body)
			if rec.Code != tt.wantCode {
				t.Fatalf("code = %d, want %d (body %s)", rec.Code, tt.wantCode, rec.Body)
			}
			if h.rec.count() != tt.wantCalls {
				t.Errorf("handler called %d times, want %d", h.rec.count(), tt.wantCalls)
			}
			metrics := h.scrape()
			if tt.wantCode == 401 {
				p := decodeProblem(t, 401, rec.Header(), rec.Body.String())
				if p.Type != "https://github.com/taskevents/taskevents/blob/main/docs/problems.md#unauthorized" {
					t.Errorf("type = %q", p.Type)
				}
				if !strings.Contains(metrics, "taskevents_worker_unauthorized_total 1\n") {
					t.Error("unauthorized_total is not 1")
				}
				if len(h.withMsg(MsgReceived))+len(h.withMsg(MsgDeadLetter)) != 0 {
					t.Error("a rejected request was logged as handled")
				}
			} else if !strings.Contains(metrics, "taskevents_worker_unauthorized_total 0\n") {
				t.Error("unauthorized_total is not 0")
			}
			if strings.Contains(h.logs.String(), token) {
				t.Error("the token appears in the log")
			}
		})
	}
}

func TestRouting(t *testing.T) {
	tests := []struct {
		method, path string
		wantCode     int
		wantAllow    string
		wantDetail   string
	}{
		{http.MethodGet, "/dapr/subscribe", 404, "", "declarative"},
		{http.MethodGet, "/dapr/config", 404, "", "declarative"},
		{http.MethodPost, "/events/unknown", 404, "", "POST /events/unknown"},
		{http.MethodGet, "/", 404, "", "No route"},
		{http.MethodGet, "/events/todo", 405, "POST", "GET"},
		{http.MethodPut, "/healthz", 405, "GET, HEAD", "PUT"},
		{http.MethodDelete, "/events/deadletter", 405, "POST", "DELETE"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			h := newHarness(t, nil)
			rec := h.do(tt.method, tt.path, nil, "")
			if rec.Code != tt.wantCode {
				t.Fatalf("code = %d, want %d", rec.Code, tt.wantCode)
			}
			p := decodeProblem(t, tt.wantCode, rec.Header(), rec.Body.String())
			if p.Type != "about:blank" || p.Title != http.StatusText(tt.wantCode) {
				t.Errorf("problem = %+v", p)
			}
			if !strings.Contains(p.Detail, tt.wantDetail) {
				t.Errorf("detail %q does not contain %q", p.Detail, tt.wantDetail)
			}
			if got := rec.Header().Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow = %q, want %q", got, tt.wantAllow)
			}
		})
	}
}

func TestHealth(t *testing.T) {
	var ready atomic.Bool
	ready.Store(true)
	h := newHarness(t, nil, func(o *Deps) { o.Ready = ready.Load })
	check := func(path string, wantCode int, wantBody string) {
		t.Helper()
		rec := h.do(http.MethodGet, path, nil, "")
		if rec.Code != wantCode || strings.TrimSpace(rec.Body.String()) != wantBody || rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%s = %d %s, want %d %s", path, rec.Code, rec.Body, wantCode, wantBody)
		}
	}
	check("/healthz", 200, `{"status":"ok"}`)
	check("/readyz", 200, `{"status":"ready"}`)
	ready.Store(false)
	check("/healthz", 200, `{"status":"ok"}`)
	check("/readyz", 503, `{"status":"draining"}`)
}

func TestDeadLetter(t *testing.T) {
	tests := []struct {
		name       string
		header     http.Header
		body       string
		maxBytes   int64
		wantID     string
		wantTaskID string
		wantReason bool
	}{
		{name: "dropped event", body: envelope(t, `"topic":"task-events"`, `"topic":"task-events-deadletter"`, taskID, "not-a-uuid"), wantID: eventID, wantTaskID: "not-a-uuid"},
		{name: "valid event", body: daprdEnvelope, wantID: eventID, wantTaskID: taskID},
		{name: "garbage", body: "\xff\xfe not json", wantID: ""},
		{name: "empty", body: "", wantID: ""},
		{name: "invalid envelope", body: envelope(t, `"specversion":"1.0",`, ``), wantID: eventID, wantTaskID: taskID},
		{name: "binary mode", header: http.Header{"Ce-Specversion": {"1.0"}, "Ce-Id": {"b-1"}, "Ce-Type": {"task.created"}}, body: taskJSON, wantID: "b-1", wantTaskID: taskID},
		{name: "oversized", body: daprdEnvelope, maxBytes: 64, wantID: "", wantReason: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, rec := deliver(t, "/events/deadletter", tt.header, tt.body, tt.maxBytes)
			if got := status(t, rec); got != "SUCCESS" {
				t.Fatalf("status = %s, want SUCCESS", got)
			}
			if h.rec.count() != 0 {
				t.Error("dead letters must not reach the handler")
			}
			line := h.onlyLine()
			if line["message"] != MsgDeadLetter || line["level"] != "warn" || line["event_id"] != tt.wantID {
				t.Errorf("line = %v", line)
			}
			if tt.wantTaskID != "" && line["task_id"] != tt.wantTaskID {
				t.Errorf("task_id = %v, want %s", line["task_id"], tt.wantTaskID)
			}
			if _, ok := line["reason"]; ok != tt.wantReason {
				t.Errorf("reason present = %v, want %v", ok, tt.wantReason)
			}
			if !strings.Contains(h.scrape(), "taskevents_worker_dead_letters_total 1\n") {
				t.Error("dead_letters_total is not 1")
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	h := newHarness(t, nil, func(o *Deps) { o.APIToken = token })
	auth := cloudEventHeader()
	auth.Set(TokenHeader, token)
	before := h.scrape()
	for _, want := range []string{
		`taskevents_worker_events_total{outcome="SUCCESS"} 0`,
		`taskevents_worker_events_total{outcome="RETRY"} 0`,
		`taskevents_worker_events_total{outcome="DROP"} 0`,
	} {
		if !strings.Contains(before, want+"\n") {
			t.Errorf("before any event: missing %q", want)
		}
	}

	h.do(http.MethodPost, "/events/todo", auth, daprdEnvelope)               // SUCCESS
	h.do(http.MethodPost, "/events/todo", auth, daprdEnvelope)               // SUCCESS, duplicate
	h.do(http.MethodPost, "/events/todo", auth, "nope")                      // DROP
	h.do(http.MethodPost, "/events/todo", auth, withID(t, "x-2"))            // SUCCESS
	h.do(http.MethodPost, "/events/deadletter", auth, daprdEnvelope)         // dead letter
	h.do(http.MethodPost, "/events/todo", cloudEventHeader(), daprdEnvelope) // 401

	got := h.scrape()
	for _, want := range []string{
		`taskevents_worker_events_total{outcome="SUCCESS"} 3`,
		`taskevents_worker_events_total{outcome="DROP"} 1`,
		`taskevents_worker_events_total{outcome="RETRY"} 0`,
		`taskevents_worker_event_handling_seconds_count{outcome="SUCCESS"} 3`,
		`taskevents_worker_event_handling_seconds_bucket{outcome="DROP",le="+Inf"} 1`,
		`taskevents_worker_duplicates_total 1`,
		`taskevents_worker_dead_letters_total 1`,
		`taskevents_worker_unauthorized_total 1`,
	} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("missing %q", want)
		}
	}
	for _, want := range []string{"# TYPE taskevents_worker_event_handling_seconds histogram", "go_goroutines ", "process_cpu_seconds_total "} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q", want)
		}
	}
}
