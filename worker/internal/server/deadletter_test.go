package server

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/taskevents/taskevents/kit/sidecar"
	"github.com/taskevents/taskevents/kit/sidecar/sidecartest"
	"github.com/taskevents/taskevents/worker/internal/deadletter"
)

func keptHarness(t *testing.T) (*harness, *sidecartest.Fake) {
	t.Helper()
	fake := sidecartest.New(t)
	client := sidecar.New(sidecar.Options{BaseURL: fake.URL})
	h := newHarness(t, nil, func(o *Deps) { o.DeadLetters = deadletter.New(client, "statestore", time.Now) })
	return h, fake
}

// A dead letter is kept, listed, inspected, and replayed to the topic it came
// from with its original id; then it is gone from the list.
func TestDeadLetterKeptAndReplayed(t *testing.T) {
	h, fake := keptHarness(t)
	if got := status(t, h.do(http.MethodPost, "/events/deadletter", cloudEventHeader(), daprdEnvelope)); got != "SUCCESS" {
		t.Fatalf("dead letter answered %s", got)
	}
	if l := h.withMsg(MsgDeadLetter); len(l) != 1 || l[0]["kept"] != true {
		t.Fatalf("DEAD LETTER lines = %v", l)
	}

	var list struct {
		Count       int                `json:"count"`
		DeadLetters []deadletter.Entry `json:"deadletters"`
	}
	rec := h.do(http.MethodGet, "/admin/deadletters", nil, "")
	if rec.Code != http.StatusOK {
		t.Fatalf("list = %d %s", rec.Code, rec.Body)
	}
	mustDecode(t, rec.Body.Bytes(), &list)
	if list.Count != 1 || list.DeadLetters[0].ID != eventID || list.DeadLetters[0].Topic != "task-events" ||
		list.DeadLetters[0].TaskID != taskID {
		t.Fatalf("list = %+v", list)
	}
	if rec := h.do(http.MethodGet, "/admin/deadletters/"+eventID, nil, ""); rec.Code != http.StatusOK {
		t.Fatalf("get = %d %s", rec.Code, rec.Body)
	}

	rec = h.do(http.MethodPost, "/admin/deadletters/"+eventID+"/replay", nil, "")
	if rec.Code != http.StatusAccepted {
		t.Fatalf("replay = %d %s", rec.Code, rec.Body)
	}
	pubs := fake.Publishes()
	if len(pubs) != 1 || pubs[0].Path != "/v1.0/publish/pubsub/task-events" ||
		pubs[0].Header.Get("Content-Type") != "application/cloudevents+json" {
		t.Fatalf("published = %+v", pubs)
	}
	var ce struct {
		ID string `json:"id"`
	}
	mustDecode(t, pubs[0].Body, &ce)
	if ce.ID != eventID {
		t.Errorf("replayed CloudEvent id = %q, want the original %q", ce.ID, eventID)
	}
	rec = h.do(http.MethodGet, "/admin/deadletters", nil, "")
	mustDecode(t, rec.Body.Bytes(), &list)
	if list.Count != 0 {
		t.Errorf("after replay the list holds %d", list.Count)
	}
	if l := h.withMsg("DEAD LETTER REPLAYED"); len(l) != 1 {
		t.Errorf("replay log lines = %v", l)
	}
}

func TestDeadLetterAdminErrors(t *testing.T) {
	h, fake := keptHarness(t)
	tests := []struct {
		name, method, path string
		want               int
	}{
		{"unknown id", http.MethodGet, "/admin/deadletters/nope", 404},
		{"replay unknown id", http.MethodPost, "/admin/deadletters/nope/replay", 404},
		{"delete unknown id", http.MethodDelete, "/admin/deadletters/nope", 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := h.do(tt.method, tt.path, nil, "")
			decodeProblem(t, tt.want, rec.Header(), rec.Body.String())
		})
	}

	// Garbage is kept too, but cannot be replayed as a CloudEvent.
	if got := status(t, h.do(http.MethodPost, "/events/deadletter", cloudEventHeader(), "not json")); got != "SUCCESS" {
		t.Fatalf("garbage dead letter answered %s", got)
	}
	id := deadletter.IDFor("", []byte("not json"))
	rec := h.do(http.MethodPost, "/admin/deadletters/"+id+"/replay", nil, "")
	decodeProblem(t, http.StatusUnprocessableEntity, rec.Header(), rec.Body.String())
	if rec := h.do(http.MethodDelete, "/admin/deadletters/"+id, nil, ""); rec.Code != http.StatusNoContent {
		t.Errorf("delete = %d %s", rec.Code, rec.Body)
	}

	// With the state store away the dead letter is not acknowledged, so the
	// broker keeps it; the admin routes answer 503.
	fake.FailState(&sidecartest.StateStoreDown)
	if got := status(t, h.do(http.MethodPost, "/events/deadletter", cloudEventHeader(), daprdEnvelope)); got != "RETRY" {
		t.Errorf("dead letter with the store down answered %s, want RETRY", got)
	}
	rec = h.do(http.MethodGet, "/admin/deadletters", nil, "")
	decodeProblem(t, http.StatusServiceUnavailable, rec.Header(), rec.Body.String())
}

func TestDeadLettersNotKept(t *testing.T) {
	h := newHarness(t, nil)
	if got := status(t, h.do(http.MethodPost, "/events/deadletter", cloudEventHeader(), daprdEnvelope)); got != "SUCCESS" {
		t.Fatalf("dead letter answered %s", got)
	}
	rec := h.do(http.MethodGet, "/admin/deadletters", nil, "")
	decodeProblem(t, http.StatusNotImplemented, rec.Header(), rec.Body.String())
}

func mustDecode(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}
