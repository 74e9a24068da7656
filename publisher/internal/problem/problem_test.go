package problem_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/taskevents/taskevents/publisher/internal/problem"
)

func TestWrite(t *testing.T) {
	rec := httptest.NewRecorder()
	rec.Header().Set("Retry-After", "1")
	p := problem.New(problem.SidecarUnavailable, "Dapr sidecar unavailable", 503, "Try again.").
		With("task_id", "abc").With("status", "shadowed").With("attempts", 3)
	problem.Write(rec, p)

	want := `{"type":"https://github.com/taskevents/taskevents/blob/main/docs/problems.md#sidecar-unavailable",` +
		`"title":"Dapr sidecar unavailable","status":503,"detail":"Try again.","attempts":3,"task_id":"abc"}` + "\n"
	if rec.Code != 503 || rec.Body.String() != want {
		t.Errorf("got %d %s\nwant 503 %s", rec.Code, rec.Body, want)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if rec.Header().Get("Retry-After") != "1" {
		t.Error("headers set before Write were dropped")
	}
}

func TestBlank(t *testing.T) {
	rec := httptest.NewRecorder()
	problem.Write(rec, problem.Blank(http.StatusMethodNotAllowed, "Use POST."))
	want := `{"type":"about:blank","title":"Method Not Allowed","status":405,"detail":"Use POST."}` + "\n"
	if rec.Body.String() != want {
		t.Errorf("got %s, want %s", rec.Body, want)
	}
}
