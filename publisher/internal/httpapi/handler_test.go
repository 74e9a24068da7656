package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"

	"github.com/taskevents/taskevents/kit/logging"
	"github.com/taskevents/taskevents/kit/problem"
	"github.com/taskevents/taskevents/kit/sidecar"
	"github.com/taskevents/taskevents/kit/sidecar/sidecartest"
	"github.com/taskevents/taskevents/publisher/internal/httpapi"
	"github.com/taskevents/taskevents/publisher/internal/publish"
)

const traceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// apiOptions are the publisher's options and the sidecar client's token.
type apiOptions struct {
	publish.Options
	APIToken string
}

// newAPI wires the handler to a real publisher and sidecar client aimed at
// sidecarURL.
// Retries do not wait; the third failed attempt asks for a wait past the
// deadline, so a failing sidecar sees exactly 3 attempts.
func newAPI(t *testing.T, sidecarURL string, mod func(*apiOptions)) (http.Handler, *logging.Buffer) {
	t.Helper()
	logs := &logging.Buffer{}
	logger := zerolog.New(logs).Level(zerolog.InfoLevel)
	o := apiOptions{Options: publish.Options{
		PubSubName:     "pubsub",
		Topic:          "task-events",
		PublishTimeout: 2 * time.Second,
		Backoff: func(n int) time.Duration {
			if n >= 3 {
				return time.Hour
			}
			return 0
		},
		Logger: logger,
	}}
	if mod != nil {
		mod(&o)
	}
	sc := sidecar.New(sidecar.Options{BaseURL: sidecarURL, APIToken: o.APIToken})
	t.Cleanup(sc.Close)
	client := publish.New(sc.Topic(o.PubSubName, o.Topic), o.Options)
	t.Cleanup(client.Close)
	return httpapi.New(httpapi.Deps{
		Publisher:      client,
		Logger:         logger,
		MaxTitleLength: 200,
		PubSubName:     "pubsub",
		Topic:          "task-events",
		AppID:          "task-api",
	}), logs
}

type problemBody struct {
	Type             string `json:"type"`
	Title            string `json:"title"`
	Status           int    `json:"status"`
	Detail           string `json:"detail"`
	SidecarStatus    *int   `json:"sidecar_status"`
	SidecarErrorCode string `json:"sidecar_error_code"`
	TaskID           string `json:"task_id"`
	Errors           []struct {
		Field  string `json:"field"`
		Detail string `json:"detail"`
	} `json:"errors"`
}

func TestRoutes(t *testing.T) {
	const jsonCT = "application/json"
	big := `{"title":"` + strings.Repeat("a", 64<<10) + `"}`
	tests := []struct {
		name        string
		method      string
		path        string
		contentType string
		body        string
		chunked     bool // no Content-Length: the limit is hit while reading
		script      []sidecartest.Response

		wantStatus   int
		wantType     string // problem slug, "about:blank", or "" for a non-problem answer
		wantHeader   map[string]string
		wantDetail   []string
		wantFields   map[string]string // errors[].field -> errors[].detail
		wantSidecar  int               // sidecar_status extension
		wantCode     string            // sidecar_error_code extension
		wantPublish  int
		wantTitleOut string
	}{
		{name: "created", method: "POST", path: "/tasks", contentType: jsonCT, body: `{"title":"Buy milk"}`,
			wantStatus: 202, wantPublish: 1, wantTitleOut: "Buy milk"},
		{name: "charset utf-8 accepted", method: "POST", path: "/tasks", contentType: "application/json; charset=UTF-8",
			body: `{"title":"Buy milk"}`, wantStatus: 202, wantPublish: 1, wantTitleOut: "Buy milk"},
		{name: "title at the limit in characters", method: "POST", path: "/tasks", contentType: jsonCT,
			body: `{"title":"` + strings.Repeat("日", 200) + `"}`, wantStatus: 202, wantPublish: 1, wantTitleOut: strings.Repeat("日", 200)},

		{name: "malformed JSON", method: "POST", path: "/tasks", contentType: jsonCT, body: `{"title": xyz}`,
			wantStatus: 400, wantType: httpapi.ProblemMalformedJSON, wantDetail: []string{"line 1, column 11", "byte offset 10"}},
		{name: "trailing garbage", method: "POST", path: "/tasks", contentType: jsonCT, body: `{"title":"a"}x`,
			wantStatus: 400, wantType: httpapi.ProblemMalformedJSON, wantDetail: []string{"after the JSON object"}},
		{name: "empty body", method: "POST", path: "/tasks", contentType: jsonCT, body: ``,
			wantStatus: 400, wantType: httpapi.ProblemMalformedJSON, wantDetail: []string{"empty"}},
		{name: "invalid UTF-8", method: "POST", path: "/tasks", contentType: jsonCT, body: "{\"title\":\"\xc3\x28\"}",
			wantStatus: 400, wantType: httpapi.ProblemMalformedJSON, wantDetail: []string{"UTF-8"}},
		{name: "missing title", method: "POST", path: "/tasks", contentType: jsonCT, body: `{}`,
			wantStatus: 422, wantType: httpapi.ProblemInvalidTask, wantDetail: []string{"title"},
			wantFields: map[string]string{"title": "is required"}},
		{name: "null title", method: "POST", path: "/tasks", contentType: jsonCT, body: `{"title":null}`,
			wantStatus: 422, wantType: httpapi.ProblemInvalidTask, wantFields: map[string]string{"title": "must not be null"}},
		{name: "blank title", method: "POST", path: "/tasks", contentType: jsonCT, body: `{"title":" \t "}`,
			wantStatus: 422, wantType: httpapi.ProblemInvalidTask, wantFields: map[string]string{"title": "must not be blank"}},
		{name: "title too long", method: "POST", path: "/tasks", contentType: jsonCT, body: `{"title":"` + strings.Repeat("日", 201) + `"}`,
			wantStatus: 422, wantType: httpapi.ProblemInvalidTask, wantFields: map[string]string{"title": "must be at most 200 characters, got 201"}},
		{name: "title not a string", method: "POST", path: "/tasks", contentType: jsonCT, body: `{"title":["a"]}`,
			wantStatus: 422, wantType: httpapi.ProblemInvalidTask, wantFields: map[string]string{"title": "must be a string, got an array"}},
		{name: "unknown fields all named", method: "POST", path: "/tasks", contentType: jsonCT,
			body:       `{"title":"a","priority":1,"assignee":"bob"}`,
			wantStatus: 422, wantType: httpapi.ProblemInvalidTask, wantDetail: []string{`"priority"`, `"assignee"`},
			wantFields: map[string]string{"priority": "unknown field", "assignee": "unknown field"}},
		{name: "not an object", method: "POST", path: "/tasks", contentType: jsonCT, body: `["a"]`,
			wantStatus: 422, wantType: httpapi.ProblemInvalidTask, wantDetail: []string{"JSON object"}},
		{name: "body over 64 KiB", method: "POST", path: "/tasks", contentType: jsonCT, body: big,
			wantStatus: 413, wantType: "about:blank"},
		{name: "body over 64 KiB without Content-Length", method: "POST", path: "/tasks", contentType: jsonCT, body: big, chunked: true,
			wantStatus: 413, wantType: "about:blank"},
		{name: "text/plain", method: "POST", path: "/tasks", contentType: "text/plain", body: `{"title":"a"}`,
			wantStatus: 415, wantType: "about:blank", wantHeader: map[string]string{"Accept-Post": "application/json"},
			wantDetail: []string{"Content-Type: application/json"}},
		{name: "no Content-Type", method: "POST", path: "/tasks", body: `{"title":"a"}`,
			wantStatus: 415, wantType: "about:blank", wantHeader: map[string]string{"Accept-Post": "application/json"},
			wantDetail: []string{"Content-Type: application/json"}},
		{name: "non-UTF-8 charset", method: "POST", path: "/tasks", contentType: "application/json; charset=latin1", body: `{"title":"a"}`,
			wantStatus: 415, wantType: "about:blank", wantHeader: map[string]string{"Accept-Post": "application/json"}},
		{name: "GET /tasks", method: "GET", path: "/tasks",
			wantStatus: 405, wantType: "about:blank", wantHeader: map[string]string{"Allow": "POST"}},
		{name: "DELETE /tasks", method: "DELETE", path: "/tasks",
			wantStatus: 405, wantType: "about:blank", wantHeader: map[string]string{"Allow": "POST"}},
		{name: "POST /healthz", method: "POST", path: "/healthz",
			wantStatus: 405, wantType: "about:blank", wantHeader: map[string]string{"Allow": "GET, HEAD"}},
		{name: "unknown path", method: "GET", path: "/nope",
			wantStatus: 404, wantType: "about:blank", wantDetail: []string{"POST /tasks"}},
		{name: "subpath of tasks", method: "POST", path: "/tasks/1", contentType: jsonCT, body: `{"title":"a"}`,
			wantStatus: 404, wantType: "about:blank"},
		{name: "healthz", method: "GET", path: "/healthz", wantStatus: 200},

		{name: "sidecar keeps failing to publish", method: "POST", path: "/tasks", contentType: jsonCT, body: `{"title":"a"}`,
			script:     []sidecartest.Response{sidecartest.PublishFailed},
			wantStatus: 503, wantType: httpapi.ProblemSidecarUnavailable, wantHeader: map[string]string{"Retry-After": "1"},
			wantDetail: []string{"NOT published", "safe to retry"}, wantPublish: 3},
		{name: "pubsub not found", method: "POST", path: "/tasks", contentType: jsonCT, body: `{"title":"a"}`,
			script:     []sidecartest.Response{sidecartest.NotFound},
			wantStatus: 502, wantType: httpapi.ProblemSidecarRejected, wantSidecar: 404, wantCode: "ERR_PUBSUB_NOT_FOUND",
			wantDetail: []string{`no pub/sub component named "pubsub" is loaded by the sidecar`, "scopes include task-api",
				"--resources-path / kubectl get components"}, wantPublish: 1},
		{name: "topic forbidden", method: "POST", path: "/tasks", contentType: jsonCT, body: `{"title":"a"}`,
			script:     []sidecartest.Response{sidecartest.Forbidden},
			wantStatus: 502, wantType: httpapi.ProblemSidecarRejected, wantSidecar: 403, wantCode: "ERR_PUBSUB_FORBIDDEN",
			wantDetail: []string{"task-api", `"task-events"`, "publishingScopes", "allowedTopics", "protectedTopics"}, wantPublish: 1},
		{name: "wrong api token", method: "POST", path: "/tasks", contentType: jsonCT, body: `{"title":"a"}`,
			script:     []sidecartest.Response{sidecartest.Unauthorized},
			wantStatus: 502, wantType: httpapi.ProblemSidecarRejected, wantSidecar: 401,
			wantDetail: []string{"DAPR_API_TOKEN does not match"}, wantPublish: 1},
		{name: "bad request metadata", method: "POST", path: "/tasks", contentType: jsonCT, body: `{"title":"a"}`,
			script:     []sidecartest.Response{sidecartest.BadMetadata},
			wantStatus: 502, wantType: httpapi.ProblemSidecarRejected, wantSidecar: 400, wantCode: "ERR_PUBSUB_REQUEST_METADATA",
			wantDetail: []string{"failed deserializing metadata"}, wantPublish: 1},
		{name: "200 is not 204", method: "POST", path: "/tasks", contentType: jsonCT, body: `{"title":"a"}`,
			script:     []sidecartest.Response{{Status: 200}},
			wantStatus: 502, wantType: httpapi.ProblemSidecarRejected, wantSidecar: 200, wantPublish: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := sidecartest.New(t)
			fake.Script(tt.script...)
			h, _ := newAPI(t, fake.URL, nil)

			var body io.Reader = strings.NewReader(tt.body)
			if tt.chunked {
				body = io.MultiReader(body) // hides the length from httptest.NewRequest
			}
			req := httptest.NewRequest(tt.method, tt.path, body)
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			res := rec.Result()

			if res.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", res.StatusCode, tt.wantStatus, rec.Body)
			}
			for k, v := range tt.wantHeader {
				if got := res.Header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			if n := len(fake.Publishes()); n != tt.wantPublish {
				t.Errorf("publish calls = %d, want %d", n, tt.wantPublish)
			}
			if tt.wantType == "" {
				if ct := res.Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type = %q, want application/json", ct)
				}
				if tt.wantStatus == 202 {
					checkCreated(t, rec.Body.Bytes(), tt.wantTitleOut, fake.Publishes())
				}
				return
			}

			if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type = %q, want application/problem+json", ct)
			}
			var p problemBody
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatalf("body is not JSON: %v: %s", err, rec.Body)
			}
			wantType := tt.wantType
			if wantType != "about:blank" {
				wantType = problem.TypeBase + tt.wantType
			}
			if p.Type != wantType || p.Status != tt.wantStatus || p.Title == "" || p.Detail == "" {
				t.Errorf("problem = %+v, want type %s, status %d, a title and a detail", p, wantType, tt.wantStatus)
			}
			if tt.wantType == "about:blank" && p.Title != http.StatusText(tt.wantStatus) {
				t.Errorf("title = %q, want %q", p.Title, http.StatusText(tt.wantStatus))
			}
			for _, s := range tt.wantDetail {
				if !strings.Contains(p.Detail, s) {
					t.Errorf("detail %q does not contain %q", p.Detail, s)
				}
			}
			if tt.wantFields != nil {
				got := map[string]string{}
				for _, e := range p.Errors {
					got[e.Field] = e.Detail
				}
				if len(got) != len(tt.wantFields) || len(p.Errors) != len(tt.wantFields) {
					t.Errorf("errors = %+v, want %v", p.Errors, tt.wantFields)
				}
				for f, d := range tt.wantFields {
					if got[f] != d {
						t.Errorf("errors[%s] = %q, want %q", f, got[f], d)
					}
				}
			}
			if tt.wantSidecar != 0 {
				if p.SidecarStatus == nil || *p.SidecarStatus != tt.wantSidecar || p.SidecarErrorCode != tt.wantCode {
					t.Errorf("sidecar_status, sidecar_error_code = %v, %q; want %d, %q", p.SidecarStatus, p.SidecarErrorCode, tt.wantSidecar, tt.wantCode)
				}
			}
			if tt.wantPublish > 0 {
				if id := fake.Publishes()[0].Query.Get("metadata.cloudevent.id"); p.TaskID != id {
					t.Errorf("task_id = %q, want the published cloudevent.id %q", p.TaskID, id)
				}
			}
		})
	}
}

// checkCreated checks the 202 body against what reached the sidecar.
func checkCreated(t *testing.T, body []byte, wantTitle string, pubs []sidecartest.Request) {
	t.Helper()
	var c struct{ ID, Title, Event string }
	if err := json.Unmarshal(body, &c); err != nil {
		t.Fatalf("202 body: %v: %s", err, body)
	}
	id, err := uuid.Parse(c.ID)
	if err != nil || id.Version() != 4 {
		t.Errorf("id = %q, want a UUID v4", c.ID)
	}
	if c.Title != wantTitle || c.Event != "published" {
		t.Errorf("202 body = %+v, want title %q and event published", c, wantTitle)
	}
	var ev publish.TaskCreated
	if err := json.Unmarshal(pubs[0].Body, &ev); err != nil {
		t.Fatal(err)
	}
	if ev != (publish.TaskCreated{EventType: "task.created", TaskID: c.ID, Title: wantTitle}) {
		t.Errorf("published %+v, want task.created for %s", ev, c.ID)
	}
	if q := pubs[0].Query; q.Get("metadata.cloudevent.id") != c.ID || q.Get("metadata.partitionKey") != c.ID ||
		q.Get("metadata.cloudevent.type") != "task.created" {
		t.Errorf("publish query = %v, want cloudevent.id and partitionKey %s", q, c.ID)
	}
}

func TestCreateTaskForwardsTraceContextAndToken(t *testing.T) {
	for _, token := range []string{"", "s3cr3t"} {
		t.Run("token="+token, func(t *testing.T) {
			fake := sidecartest.New(t)
			fake.Token = token
			h, logs := newAPI(t, fake.URL, func(o *apiOptions) { o.APIToken = token })

			req := httptest.NewRequest(http.MethodPost, "/tasks", strings.NewReader(`{"title":"traced"}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("traceparent", traceParent)
			req.Header.Set("tracestate", "rojo=00f067aa0ba902b7")
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != 202 {
				t.Fatalf("status = %d: %s", rec.Code, rec.Body)
			}
			got := fake.Publishes()[0].Header
			if got.Get("traceparent") != traceParent || got.Get("tracestate") != "rojo=00f067aa0ba902b7" {
				t.Errorf("trace headers = %q, %q", got.Get("traceparent"), got.Get("tracestate"))
			}
			if v := got.Values("dapr-api-token"); token == "" && len(v) > 0 || token != "" && got.Get("dapr-api-token") != token {
				t.Errorf("dapr-api-token = %q, want %q (absent when empty)", v, token)
			}
			if !strings.Contains(logs.String(), `"traceparent":"`+traceParent+`"`) {
				t.Errorf("publish log line lacks the traceparent: %s", logs)
			}
			if token != "" && strings.Contains(logs.String(), token) {
				t.Errorf("logs contain the token: %s", logs)
			}
		})
	}
}

func TestCreateTaskRetriesWithTheSameID(t *testing.T) {
	fake := sidecartest.New(t)
	fake.Script(sidecartest.PublishFailed, sidecartest.PublishFailed, sidecartest.Published)
	h, _ := newAPI(t, fake.URL, nil)

	req := httptest.NewRequest(http.MethodPost, "/tasks", strings.NewReader(`{"title":"retry me"}`))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 202 {
		t.Fatalf("status = %d: %s", rec.Code, rec.Body)
	}
	var c struct{ ID string }
	_ = json.Unmarshal(rec.Body.Bytes(), &c)
	pubs := fake.Publishes()
	if len(pubs) != 3 {
		t.Fatalf("publish calls = %d, want 3", len(pubs))
	}
	for i, p := range pubs {
		if id := p.Query.Get("metadata.cloudevent.id"); id != c.ID {
			t.Errorf("attempt %d cloudevent.id = %q, want %q", i+1, id, c.ID)
		}
		if !bytes.Equal(p.Body, pubs[0].Body) {
			t.Errorf("attempt %d body differs: %s vs %s", i+1, p.Body, pubs[0].Body)
		}
	}
}

func TestCreateTaskSidecarDownIsFast503(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	h, _ := newAPI(t, "http://"+addr, func(o *apiOptions) {
		o.PublishTimeout = 300 * time.Millisecond
		o.Backoff = func(int) time.Duration { return 20 * time.Millisecond }
	})

	req := httptest.NewRequest(http.MethodPost, "/tasks", strings.NewReader(`{"title":"a"}`))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	start := time.Now()
	h.ServeHTTP(rec, req)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %s, want about PUBLISH_TIMEOUT (300ms)", d)
	}
	if rec.Code != 503 || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("status = %d, Retry-After = %q; want 503 and 1: %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	if !strings.Contains(rec.Body.String(), httpapi.ProblemSidecarUnavailable) {
		t.Errorf("body = %s, want type %s", rec.Body, httpapi.ProblemSidecarUnavailable)
	}
}

func TestReadyz(t *testing.T) {
	for _, tt := range []struct {
		ready  bool
		reason string
		status int
	}{{true, "ready", 200}, {false, "draining", 503}, {false, "sidecar not ready: boom", 503}} {
		h := httpapi.New(httpapi.Deps{
			Publisher: &fakePublisher{},
			Logger:    zerolog.Nop(),
			Ready:     func() (bool, string) { return tt.ready, tt.reason },
		})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		want := `{"status":"` + tt.reason + `"}` + "\n"
		if rec.Code != tt.status || rec.Body.String() != want {
			t.Errorf("readyz = %d %s, want %d %s", rec.Code, rec.Body, tt.status, want)
		}
	}
}

func TestPanicIsA500WithoutInternals(t *testing.T) {
	logs := &logging.Buffer{}
	h := httpapi.New(httpapi.Deps{
		Publisher:      &fakePublisher{panicWith: "secret internal state"},
		Logger:         zerolog.New(logs),
		MaxTitleLength: 200,
	})
	req := httptest.NewRequest(http.MethodPost, "/tasks", strings.NewReader(`{"title":"a"}`))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)

	if rec.Code != 500 || rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Fatalf("status = %d, Content-Type = %q; want 500 problem+json", rec.Code, rec.Header().Get("Content-Type"))
	}
	if b := rec.Body.String(); strings.Contains(b, "secret") || strings.Contains(b, "goroutine") || strings.Contains(b, ".go:") {
		t.Errorf("500 body leaks internals: %s", b)
	}
	if l := logs.String(); !strings.Contains(l, "handler panicked") || !strings.Contains(l, "secret internal state") {
		t.Errorf("panic not logged: %s", l)
	}
}

func TestUnclassifiedPublishErrorIsA500(t *testing.T) {
	h := httpapi.New(httpapi.Deps{
		Publisher:      &fakePublisher{err: errors.New("disk on fire at /var/lib/x")},
		Logger:         zerolog.Nop(),
		MaxTitleLength: 200,
	})
	req := httptest.NewRequest(http.MethodPost, "/tasks", strings.NewReader(`{"title":"a"}`))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 500 || strings.Contains(rec.Body.String(), "disk on fire") {
		t.Errorf("got %d %s, want 500 without the internal error", rec.Code, rec.Body)
	}
}

// fakePublisher is an in-memory Publisher.
type fakePublisher struct {
	err       error
	panicWith string
}

func (f *fakePublisher) Publish(context.Context, publish.TaskCreated, publish.TraceContext) error {
	if f.panicWith != "" {
		panic(f.panicWith)
	}
	return f.err
}

func BenchmarkCreateTask(b *testing.B) {
	h := httpapi.New(httpapi.Deps{
		Publisher:      &fakePublisher{},
		Logger:         zerolog.Nop(),
		MaxTitleLength: 200,
	})
	body := []byte(`{"title":"Benchmark the publisher"}`)
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/tasks", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusAccepted {
			b.Fatalf("status = %d: %s", rec.Code, rec.Body)
		}
	}
}
