package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/taskevents/taskevents/kit/kittest"
	"github.com/taskevents/taskevents/kit/logging"
	"github.com/taskevents/taskevents/kit/problem"
	"github.com/taskevents/taskevents/kit/sidecar"
	"github.com/taskevents/taskevents/kit/sidecar/sidecartest"
	"github.com/taskevents/taskevents/publisher/internal/httpapi"
	"github.com/taskevents/taskevents/publisher/internal/idempotency"
	"github.com/taskevents/taskevents/publisher/internal/publish"
)

const ttl = 24 * time.Hour

// idemEnv is one handler with one idempotency store behind it.
type idemEnv struct {
	h       http.Handler
	fake    *sidecartest.Fake
	advance func(time.Duration) // moves the store's clock
	logs    *logging.Buffer
}

// newIdemEnv wires the handler to a fake sidecar for publishing and to kind
// ("dapr": the fake's state store named storeName; "memory") for keys.
func newIdemEnv(t *testing.T, kind, storeName string) *idemEnv {
	t.Helper()
	fake := sidecartest.New(t)
	logs := &logging.Buffer{}
	logger := zerolog.New(logs)
	sc := sidecar.New(sidecar.Options{BaseURL: fake.URL})
	t.Cleanup(sc.Close)
	client := publish.New(sc.Topic("pubsub", "task-events"), publish.Options{
		PubSubName: "pubsub", Topic: "task-events", PublishTimeout: 2 * time.Second,
		Backoff: func(n int) time.Duration {
			if n >= 2 {
				return time.Hour // two attempts, then give up
			}
			return 0
		},
		Logger: logger,
	})
	t.Cleanup(client.Close)
	env := &idemEnv{fake: fake, logs: logs}
	var store idempotency.Store
	switch kind {
	case "dapr":
		store = idempotency.NewDapr(sc, storeName, ttl, time.Second)
		env.advance = fake.Advance
	case "memory":
		c := kittest.NewClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
		store = idempotency.NewMemory(ttl, 1000, c.Now)
		env.advance = c.Advance
		storeName = ""
	}
	env.h = httpapi.New(httpapi.Deps{
		Publisher: client, Logger: logger, MaxTitleLength: 200, PubSubName: "pubsub", Topic: "task-events",
		AppID: "task-api", Idempotency: store, IdempotencyStore: storeName,
	})
	return env
}

// post sends POST /tasks with the given Idempotency-Key field lines.
func (e *idemEnv) post(body string, keys ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/tasks", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for _, k := range keys {
		req.Header.Add("Idempotency-Key", k)
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return rec
}

// answer is what a step's response says: the task id (of a 202, or a
// problem's task_id) and, for a problem, its type slug.
type answer struct {
	ID    string `json:"id"`
	Task  string `json:"task_id"`
	Type  string `json:"type"`
	Title string `json:"title"`
}

type idemStep struct {
	keys   []string // Idempotency-Key field lines; none: no header
	body   string
	before func(*idemEnv)

	status    int
	slug      string // problem type slug, "" for the 202
	sameAs    int    // 1-based step whose task id this one repeats; 0: a new id, or none
	publishes int    // publish calls made so far (all steps)
}

func TestIdempotencyKey(t *testing.T) {
	const k = "8e03978e-40d5-43e8-bc93-6894a57f9324"
	a, b := `{"title":"a"}`, `{"title":"b"}`
	tests := []struct {
		name  string
		kinds []string // stores to run on; default both
		store string   // Dapr state store name; default statestore
		steps []idemStep
	}{
		{name: "same key and body: same 202, published again under the same id", steps: []idemStep{
			{keys: []string{k}, body: a, status: 202, publishes: 1},
			{keys: []string{k}, body: a, status: 202, sameAs: 1, publishes: 2},
			{keys: []string{k}, body: a, status: 202, sameAs: 1, publishes: 3},
		}},
		{name: "quoted and bare key are one key", steps: []idemStep{
			{keys: []string{`"` + k + `"`}, body: a, status: 202, publishes: 1},
			{keys: []string{k}, body: a, status: 202, sameAs: 1, publishes: 2},
		}},
		{name: "fingerprint is of the task, not the bytes", steps: []idemStep{
			{keys: []string{k}, body: `{"title":"a"}`, status: 202, publishes: 1},
			{keys: []string{k}, body: "{ \"title\" :\n\"\\u0061\" }", status: 202, sameAs: 1, publishes: 2},
		}},
		{name: "same key, different body: 422 and nothing published", steps: []idemStep{
			{keys: []string{k}, body: a, status: 202, publishes: 1},
			{keys: []string{k}, body: b, status: 422, slug: httpapi.ProblemIdempotencyKeyReused, publishes: 1},
			{keys: []string{k}, body: a, status: 202, sameAs: 1, publishes: 2},
		}},
		{name: "other keys and no key are new tasks", steps: []idemStep{
			{keys: []string{k}, body: a, status: 202, publishes: 1},
			{keys: []string{k + "x"}, body: a, status: 202, publishes: 2},
			{body: a, status: 202, publishes: 3},
			{body: a, status: 202, publishes: 4},
		}},
		{name: "malformed keys: 400, nothing published", steps: []idemStep{
			{keys: []string{""}, body: a, status: 400, slug: httpapi.ProblemIdempotencyKeyInvalid},
			{keys: []string{strings.Repeat("k", 256)}, body: a, status: 400, slug: httpapi.ProblemIdempotencyKeyInvalid},
			{keys: []string{"caf\u00e9"}, body: a, status: 400, slug: httpapi.ProblemIdempotencyKeyInvalid},
			{keys: []string{`"unterminated`}, body: a, status: 400, slug: httpapi.ProblemIdempotencyKeyInvalid},
			{keys: []string{"a", "b"}, body: a, status: 400, slug: httpapi.ProblemIdempotencyKeyInvalid},
			// The key is checked before the body, so a bad key is reported even with a bad body.
			{keys: []string{"a b"}, body: `{`, status: 400, slug: httpapi.ProblemIdempotencyKeyInvalid},
		}},
		{name: "an invalid task does not use up the key", steps: []idemStep{
			{keys: []string{k}, body: `{}`, status: 422, slug: httpapi.ProblemInvalidTask},
			{keys: []string{k}, body: b, status: 202, publishes: 1},
		}},
		{name: "retry after a rejected publish is published under the same id", steps: []idemStep{
			{keys: []string{k}, body: a, before: func(e *idemEnv) { e.fake.Script(sidecartest.NotFound, sidecartest.Published) },
				status: 502, slug: httpapi.ProblemSidecarRejected, publishes: 1},
			{keys: []string{k}, body: a, status: 202, sameAs: 1, publishes: 2},
		}},
		{name: "retry after an unavailable sidecar is published under the same id", steps: []idemStep{
			{keys: []string{k}, body: a, before: func(e *idemEnv) {
				e.fake.Script(sidecartest.PublishFailed, sidecartest.PublishFailed, sidecartest.Published)
			}, status: 503, slug: httpapi.ProblemSidecarUnavailable, publishes: 2},
			{keys: []string{k}, body: a, status: 202, sameAs: 1, publishes: 3},
		}},
		{name: "keys expire after the TTL", steps: []idemStep{
			{keys: []string{k}, body: a, status: 202, publishes: 1},
			{keys: []string{k}, body: a, before: func(e *idemEnv) { e.advance(ttl - time.Second) }, status: 202, sameAs: 1, publishes: 2},
			{keys: []string{k}, body: b, status: 422, slug: httpapi.ProblemIdempotencyKeyReused, publishes: 2},
			{keys: []string{k}, body: b, before: func(e *idemEnv) { e.advance(time.Second) }, status: 202, publishes: 3},
			{keys: []string{k}, body: b, status: 202, sameAs: 4, publishes: 4},
		}},
		{name: "state store down: 503, nothing published, fine again once it is back", kinds: []string{"dapr"}, steps: []idemStep{
			{keys: []string{k}, body: a, before: func(e *idemEnv) { e.fake.FailState(&sidecartest.StateStoreDown) },
				status: 503, slug: httpapi.ProblemIdempotencyStoreUnavailable},
			{body: a, status: 202, publishes: 1}, // requests without a key never touch the store
			{keys: []string{k}, body: a, before: func(e *idemEnv) { e.fake.FailState(nil) }, status: 202, publishes: 2},
		}},
		{name: "sidecar unreachable for the claim: 503", kinds: []string{"dapr"}, steps: []idemStep{
			{keys: []string{k}, body: a, before: func(e *idemEnv) { e.fake.Close() },
				status: 503, slug: httpapi.ProblemIdempotencyStoreUnavailable},
		}},
		{name: "no such state store: 502 naming IDEMPOTENCY_STORE", kinds: []string{"dapr"}, store: "nope", steps: []idemStep{
			{keys: []string{k}, body: a, status: 502, slug: httpapi.ProblemSidecarRejected},
			{body: a, status: 202, publishes: 1},
		}},
	}
	for _, tt := range tests {
		kinds := tt.kinds
		if kinds == nil {
			kinds = []string{"dapr", "memory"}
		}
		for _, kind := range kinds {
			t.Run(kind+"/"+tt.name, func(t *testing.T) {
				store := tt.store
				if store == "" {
					store = "statestore"
				}
				env := newIdemEnv(t, kind, store)
				ids := make([]string, len(tt.steps))
				for i, s := range tt.steps {
					if s.before != nil {
						s.before(env)
					}
					rec := env.post(s.body, s.keys...)
					var got answer
					if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
						t.Fatalf("step %d: body %s: %v", i+1, rec.Body, err)
					}
					if rec.Code != s.status {
						t.Fatalf("step %d: status %d, want %d: %s", i+1, rec.Code, s.status, rec.Body)
					}
					if s.slug != "" && got.Type != problem.TypeBase+s.slug {
						t.Fatalf("step %d: type %s, want %s", i+1, got.Type, s.slug)
					}
					ids[i] = got.ID + got.Task
					if s.sameAs > 0 && ids[i] != ids[s.sameAs-1] {
						t.Errorf("step %d: task id %q, want step %d's %q", i+1, ids[i], s.sameAs, ids[s.sameAs-1])
					}
					if s.sameAs == 0 && ids[i] != "" {
						for j := range i {
							if ids[j] == ids[i] {
								t.Errorf("step %d: task id %s repeats step %d's, want a new one", i+1, ids[i], j+1)
							}
						}
					}
					if s.status == 503 && rec.Header().Get("Retry-After") != "1" {
						t.Errorf("step %d: Retry-After %q, want 1", i+1, rec.Header().Get("Retry-After"))
					}
					if n := len(env.fake.Publishes()); n != s.publishes {
						t.Errorf("step %d: %d publish calls so far, want %d", i+1, n, s.publishes)
					}
					if s.status == 202 {
						// Every publish of this answer carried its id as the CloudEvent id.
						pubs := env.fake.Publishes()
						if ce := pubs[len(pubs)-1].Query.Get("metadata.cloudevent.id"); ce != got.ID {
							t.Errorf("step %d: published cloudevent.id %s, answered id %s", i+1, ce, got.ID)
						}
					}
				}
				for _, k := range []string{k, strings.Repeat("k", 256)} {
					if strings.Contains(env.logs.String(), k) {
						t.Errorf("the logs contain a raw key: %s", env.logs)
					}
				}
			})
		}
	}
}

func TestIdempotencyStoreErrorDetails(t *testing.T) {
	env := newIdemEnv(t, "dapr", "nope")
	var p problemBody
	rec := env.post(`{"title":"a"}`, "k")
	_ = json.Unmarshal(rec.Body.Bytes(), &p)
	if p.SidecarStatus == nil || *p.SidecarStatus != 400 || p.SidecarErrorCode != sidecar.CodeStateStoreNotFound ||
		!strings.Contains(p.Detail, `"nope"`) || !strings.Contains(p.Detail, "IDEMPOTENCY_STORE") || p.TaskID != "" {
		t.Errorf("problem = %+v, want 400 ERR_STATE_STORE_NOT_FOUND naming the store and IDEMPOTENCY_STORE, no task_id", p)
	}
	if saves := env.fake.StateSaves(); len(saves) != 1 {
		t.Errorf("state saves = %d, want 1", len(saves))
	}

	env = newIdemEnv(t, "dapr", "statestore")
	env.fake.FailState(&sidecartest.StateStoreDown)
	rec = env.post(`{"title":"a"}`, "k")
	_ = json.Unmarshal(rec.Body.Bytes(), &p)
	if !strings.Contains(p.Detail, `Dapr state store "statestore"`) || !strings.Contains(p.Detail, "NOT published") {
		t.Errorf("detail = %q, want the store's name and that nothing was published", p.Detail)
	}
}

// TestIdempotencyConcurrent sends one key from many clients at once: the
// loser of every first-write race reads the winner's record, so all get the
// winner's id, and every publish carries it.
func TestIdempotencyConcurrent(t *testing.T) {
	for _, kind := range []string{"dapr", "memory"} {
		t.Run(kind, func(t *testing.T) {
			env := newIdemEnv(t, kind, "statestore")
			const n = 16
			var wg sync.WaitGroup
			answers := make([]*httptest.ResponseRecorder, n)
			titles := make([]string, n)
			for i := range n {
				titles[i] = "same"
				if i%4 == 3 {
					titles[i] = fmt.Sprintf("different %d", i)
				}
				wg.Go(func() { answers[i] = env.post(`{"title":"`+titles[i]+`"}`, "shared-key") })
			}
			wg.Wait()
			// Whichever request won, every request with its title is accepted
			// under one id, and every other title is refused.
			ids, won := map[string]bool{}, map[string]bool{}
			for _, rec := range answers {
				if rec.Code == 202 {
					var got answer
					_ = json.Unmarshal(rec.Body.Bytes(), &got)
					ids[got.ID], won[got.Title] = true, true
				}
			}
			if len(ids) != 1 || len(won) != 1 {
				t.Fatalf("accepted ids %v with titles %v, want one of each", ids, won)
			}
			accepted := 0
			for i, rec := range answers {
				want := 422
				if won[titles[i]] {
					want = 202
					accepted++
				}
				if rec.Code != want {
					t.Errorf("request %d (%q): %d, want %d: %s", i, titles[i], rec.Code, want, rec.Body)
				}
			}
			pubs := env.fake.Publishes()
			if len(pubs) != accepted {
				t.Errorf("%d publishes for %d accepted requests", len(pubs), accepted)
			}
			for _, p := range pubs {
				if !ids[p.Query.Get("metadata.cloudevent.id")] {
					t.Errorf("published cloudevent.id %s, want the one id %v", p.Query.Get("metadata.cloudevent.id"), ids)
				}
			}
		})
	}
}

func TestOpenAPIRoute(t *testing.T) {
	doc := []byte("openapi: 3.1.0\n")
	h := httpapi.New(httpapi.Deps{Publisher: &fakePublisher{}, Logger: zerolog.Nop(), OpenAPI: doc})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/openapi.yaml", nil))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/yaml" || rec.Body.String() != string(doc) {
		t.Errorf("GET /openapi.yaml = %d %q %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/openapi.yaml", nil))
	if rec.Code != 405 || rec.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /openapi.yaml = %d Allow %q, want 405 GET, HEAD", rec.Code, rec.Header().Get("Allow"))
	}
}
