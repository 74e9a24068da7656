package problem_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/taskevents/taskevents/kit/problem"
)

func TestWrite(t *testing.T) {
	for _, tt := range []struct {
		name   string
		header map[string]string // set before Write, and kept
		p      problem.Details
		status int
		body   string
	}{
		{
			name:   "project type with extensions in name order; one shadowing a standard member is dropped",
			header: map[string]string{"Retry-After": "1"},
			p: problem.New("sidecar-unavailable", "Dapr sidecar unavailable", 503, "Try again.").
				With("task_id", "abc").With("status", "shadowed").With("attempts", 3),
			status: 503,
			body: `{"type":"https://github.com/taskevents/taskevents/blob/main/docs/problems.md#sidecar-unavailable",` +
				`"title":"Dapr sidecar unavailable","status":503,"detail":"Try again.","attempts":3,"task_id":"abc"}`,
		},
		{
			name:   "about:blank takes the status text as its title",
			header: map[string]string{"Allow": "POST"},
			p:      problem.Blank(http.StatusMethodNotAllowed, "Use POST."),
			status: 405,
			body:   `{"type":"about:blank","title":"Method Not Allowed","status":405,"detail":"Use POST."}`,
		},
		{
			name:   "empty detail and instance are left out",
			p:      problem.Blank(http.StatusNotFound, ""),
			status: 404,
			body:   `{"type":"about:blank","title":"Not Found","status":404}`,
		},
		{
			name:   "an extension that cannot be encoded is dropped, not the body",
			p:      problem.Blank(http.StatusBadGateway, "Sidecar said no.").With("bad", func() {}),
			status: 502,
			body:   `{"type":"about:blank","title":"Bad Gateway","status":502,"detail":"Sidecar said no."}`,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			for k, v := range tt.header {
				rec.Header().Set(k, v)
			}
			rec.Header().Set("Content-Length", "999") // a stale length must not survive
			problem.Write(rec, tt.p)
			if rec.Code != tt.status || rec.Body.String() != tt.body+"\n" {
				t.Errorf("got %d %s\nwant %d %s", rec.Code, rec.Body, tt.status, tt.body)
			}
			for k, v := range tt.header {
				if got := rec.Header().Get(k); got != v {
					t.Errorf("header %s = %q, want %q kept", k, got, v)
				}
			}
			for k, v := range map[string]string{"Content-Type": problem.ContentType, "X-Content-Type-Options": "nosniff", "Content-Length": ""} {
				if got := rec.Header().Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
		})
	}
	if problem.ContentType != "application/problem+json" {
		t.Errorf("ContentType = %q", problem.ContentType)
	}
}

func TestWithDoesNotAlias(t *testing.T) {
	base := problem.Blank(http.StatusBadRequest, "x").With("a", 1)
	_ = base.With("b", 2)
	if len(base.Extensions) != 1 {
		t.Errorf("With changed the problem it was called on: %v", base.Extensions)
	}
}
