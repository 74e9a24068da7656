package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
	"golang.org/x/net/http/httpguts"

	"github.com/taskevents/taskevents/kit/logging"
	"github.com/taskevents/taskevents/kit/problem"
	"github.com/taskevents/taskevents/kit/sidecar"
	"github.com/taskevents/taskevents/kit/sidecar/sidecartest"
	"github.com/taskevents/taskevents/publisher/internal/httpapi"
	"github.com/taskevents/taskevents/publisher/internal/publish"
	"github.com/taskevents/taskevents/publisher/internal/task"
)

// countingPublisher counts the publishes that reached the sidecar client, so the fuzz
// target can tell a 202 that published from one that did not without copying the fake
// sidecar's ever-growing record on every input.
type countingPublisher struct {
	next httpapi.Publisher
	n    atomic.Int64
}

func (c *countingPublisher) Publish(ctx context.Context, ev publish.TaskCreated, trace publish.TraceContext) error {
	c.n.Add(1)
	return c.next.Publish(ctx, ev, trace)
}

// FuzzCreateTask drives the whole handler (httpapi.New with the real sidecar client and a
// fake sidecar that accepts every publish) with any body, Content-Type, traceparent and
// Idempotency-Key, with and without a Content-Length, and past the body limit. The
// property: 202 for a valid task (published exactly once), otherwise a 4xx problem+json
// whose status matches the decoder's verdict: never a 5xx, never a plain-text error.
func FuzzCreateTask(f *testing.F) {
	fake := sidecartest.New(f)
	sc := sidecar.New(sidecar.Options{BaseURL: fake.URL})
	f.Cleanup(sc.Close)
	client := publish.New(sc.Topic("pubsub", "task-events"), publish.Options{
		PubSubName: "pubsub", Topic: "task-events",
		PublishTimeout: 2 * time.Second, Backoff: func(int) time.Duration { return 0 },
		Logger: zerolog.Nop(),
	})
	f.Cleanup(client.Close)
	pub := &countingPublisher{next: client}
	const maxTitle = 200
	h := httpapi.New(httpapi.Deps{
		Publisher: pub,
		// Debug level, so the request log middleware runs too.
		Logger:         zerolog.New(io.Discard).Level(zerolog.DebugLevel),
		MaxTitleLength: maxTitle,
		PubSubName:     "pubsub", Topic: "task-events", AppID: "task-api",
	})

	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, s := range []struct {
		contentType, body string
		chunked, oversize bool
		traceparent, key  string
	}{
		{"application/json", `{"title":"Buy milk"}`, false, false, tp, ""},
		{"application/json", `{"title":"Buy milk"}`, false, false, "", "9f3c2a1e-key-1"},
		{"application/json", `{"title":"Buy bread"}`, false, false, "", "9f3c2a1e-key-1"},
		{"application/json", `{"title":"Buy milk"}`, false, false, "", "\"quoted\""},
		{"application/json", `{"title":"Buy milk"}`, false, false, "", strings.Repeat("k", 300)},
		{"application/json; charset=utf-8", `{"title":"Buy milk"}`, true, false, "", ""},
		{"application/json", `{"title":"Buy milk"}`, false, true, "", ""},
		{"application/json", `{"title":"Buy milk"}`, true, true, "", ""},
		{"application/json", `{"title":"a","x":1}`, false, false, "", ""},
		{"application/json", `{"title":`, false, false, "", ""},
		{"application/json", "{\"title\":\"\xff\"}", false, false, "", ""},
		{"application/json", `{"title":"` + strings.Repeat("日", maxTitle+1) + `"}`, false, false, "", ""},
		{"application/json", ``, false, false, "", ""},
		{"application/json", `[]`, false, false, "garbage", ""},
		{"text/plain", `{"title":"Buy milk"}`, false, false, "", ""},
		{"", `{"title":"Buy milk"}`, false, false, "", ""},
		{"application/json; charset=latin1", `{"title":"a"}`, false, false, "", ""},
		{"application/json; charset", `{"title":"a"}`, false, false, "", ""},
		{"APPLICATION/JSON", `{"title":"a"}`, false, false, "", ""},
		{"application/json;;", `{"title":"a"}`, false, false, "", ""},
	} {
		f.Add(s.contentType, []byte(s.body), s.chunked, s.oversize, s.traceparent, s.key)
	}
	f.Fuzz(func(t *testing.T, contentType string, body []byte, chunked, oversize bool, traceparent, key string) {
		// net/http's server answers 400 itself, before any handler runs, to header
		// values with control characters; the handler never sees them.
		if !httpguts.ValidHeaderFieldValue(contentType) || !httpguts.ValidHeaderFieldValue(traceparent) || !httpguts.ValidHeaderFieldValue(key) {
			return
		}
		if oversize {
			body = append(body, bytes.Repeat([]byte{' '}, task.MaxBodyBytes)...)
		}
		var r io.Reader = bytes.NewReader(body)
		if chunked {
			r = io.MultiReader(r) // no Content-Length: the limit is hit while reading
		}
		req := httptest.NewRequest(http.MethodPost, "/tasks", r)
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if traceparent != "" {
			req.Header.Set("traceparent", traceparent)
		}
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		before := pub.n.Load()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		published := pub.n.Load() - before

		decoded, derr := task.Decode(bytes.NewReader(body), task.Options{MaxTitleLength: maxTitle})
		want := http.StatusAccepted
		var de *task.Error
		if errors.As(derr, &de) {
			want = map[task.Kind]int{task.Malformed: 400, task.TooLarge: 413, task.Invalid: 422}[de.Kind]
		}
		got := rec.Code
		switch {
		case got >= 500:
			t.Fatalf("%d for Content-Type %q, body %q: a client's input must never be a server error: %s",
				got, contentType, logging.Truncate(string(body), 200), rec.Body)
		case got == http.StatusUnsupportedMediaType:
			// The media type is checked first, so 415 may stand in for any verdict on the
			// body, but never for plain application/json.
			if contentType == "application/json" {
				t.Fatalf("415 for Content-Type application/json: %s", rec.Body)
			}
		case key != "" && (got == http.StatusBadRequest || got == http.StatusUnprocessableEntity):
			// A malformed Idempotency-Key (400) is checked before the body, and a key
			// reused for another task (422) after it.
		case got != want:
			t.Fatalf("%d for Content-Type %q, body %q; the decoder says %d (%v): %s",
				got, contentType, logging.Truncate(string(body), 200), want, derr, rec.Body)
		}

		if got == http.StatusAccepted {
			if published != 1 {
				t.Fatalf("202 after %d publishes, want exactly 1", published)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Fatalf("202 with Content-Type %q", ct)
			}
			var c struct{ ID, Title, Event string }
			if err := json.Unmarshal(rec.Body.Bytes(), &c); err != nil {
				t.Fatalf("202 body is not JSON: %v: %s", err, rec.Body)
			}
			if _, err := uuid.Parse(c.ID); err != nil || c.Title != decoded.Title || c.Event != "published" {
				t.Fatalf("202 body %+v, want a UUID, title %q and event published", c, decoded.Title)
			}
			return
		}
		if published != 0 {
			t.Fatalf("%d answered, but %d publishes were made", got, published)
		}
		if ct := rec.Header().Get("Content-Type"); ct != problem.ContentType {
			t.Fatalf("%d with Content-Type %q, want %s: %s", got, ct, problem.ContentType, rec.Body)
		}
		var p struct {
			Type, Title, Detail string
			Status              int
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
			t.Fatalf("%d problem is not JSON: %v: %q", got, err, rec.Body)
		}
		if p.Status != got || p.Type == "" || p.Title == "" || p.Detail == "" {
			t.Fatalf("%d problem %+v lacks a matching status, a type, a title or a detail", got, p)
		}
	})
}
