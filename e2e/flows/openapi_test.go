package flows

// publisher/openapi.yaml is a contract, not a comment: this test loads it as OpenAPI 3.1,
// runs the shipped publisher binary against a fake sidecar (no daprd or broker, so it takes
// a second or two), provokes every documented answer, and validates each real request and
// response against the document. A documented status that no request produced fails the
// test, so the document cannot list answers the publisher never gives.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	valerrors "github.com/pb33f/libopenapi-validator/errors"

	"github.com/taskevents/taskevents/e2e/internal/suite"
	"github.com/taskevents/taskevents/tools/harness"
)

func TestOpenAPI(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(suite.Root, "publisher", "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := libopenapi.NewDocument(raw)
	if err != nil {
		t.Fatalf("publisher/openapi.yaml: %v", err)
	}
	if v := doc.GetSpecInfo().Version; !strings.HasPrefix(v, "3.1.") {
		t.Fatalf("publisher/openapi.yaml is OpenAPI %s, want 3.1", v)
	}
	model, err := doc.BuildV3Model()
	if err != nil {
		t.Fatalf("publisher/openapi.yaml does not build: %v", err)
	}
	v, errs := validator.NewValidator(doc, config.WithFormatAssertions())
	if len(errs) > 0 {
		t.Fatalf("validator: %v", errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		t.Fatalf("publisher/openapi.yaml is not valid OpenAPI 3.1:\n%s", describe(verrs))
	}

	// The publisher refuses a title that strings.TrimSpace empties; the document's pattern
	// must say exactly that, rune for rune, or a fuzzer's "valid" title is refused.
	title := model.Model.Components.Schemas.GetOrZero("NewTask").Schema().Properties.GetOrZero("title").Schema()
	re, err := regexp.Compile(title.Pattern)
	if err != nil {
		t.Fatalf("the title pattern %q: %v", title.Pattern, err)
	}
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if r >= 0xD800 && r <= 0xDFFF {
			continue // surrogates cannot be in a JSON string decoded to UTF-8
		}
		if accepts := re.MatchString(string(r)); accepts == unicode.IsSpace(r) {
			t.Errorf("the title pattern accepts U+%04X as a whole title: %v; the publisher: %v", r, accepts, !accepts)
		}
	}

	// Every (method, path, status) the document promises.
	documented := map[string]bool{}
	for path, item := range model.Model.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			for code := range op.Responses.Codes.FromOldest() {
				documented[strings.ToUpper(method)+" "+path+" "+code] = false
			}
		}
	}

	fake := newOpenAPISidecar(t)
	sidecarURL, _ := url.Parse(fake.URL)
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	app, err := suite.NewHarness(t).StartApp(ctx, "publisher", suite.Bins.Publisher, port, []string{
		"DAPR_HOST=127.0.0.1", "DAPR_HTTP_PORT=" + sidecarURL.Port(), "READINESS_INTERVAL=50ms",
		"PUBLISH_TIMEOUT=400ms", "IDEMPOTENCY_STORE=statestore",
	})
	if err != nil {
		t.Fatal(err)
	}

	seen := map[string]bool{}
	exchange := func(t *testing.T, e openAPIExchange) (http.Header, []byte) {
		t.Helper()
		req, err := http.NewRequest(e.method, app.URL+e.path, strings.NewReader(e.body))
		if err != nil {
			t.Fatal(err)
		}
		if e.body != "" || e.contentType != "" {
			req.Header.Set("Content-Type", cmp(e.contentType, "application/json"))
		}
		if e.key != "" {
			req.Header.Set("Idempotency-Key", e.key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != e.want {
			t.Fatalf("%s %s = %d, want %d: %s", e.method, e.path, resp.StatusCode, e.want, body)
		}
		// The validator reads both bodies, so it gets fresh copies. A request the test
		// makes invalid on purpose is still checked for its response.
		req.Body = io.NopCloser(strings.NewReader(e.body))
		resp.Body = io.NopCloser(bytes.NewReader(body))
		var ok bool
		var verrs []*valerrors.ValidationError
		if e.invalidRequest {
			ok, verrs = v.ValidateHttpResponse(req, resp)
		} else {
			ok, verrs = v.ValidateHttpRequestResponse(req, resp)
		}
		if !ok {
			t.Errorf("%s %s → %d does not match publisher/openapi.yaml:\n%s\nbody: %s", e.method, e.path, resp.StatusCode, describe(verrs), body)
		}
		seen[e.method+" "+e.path+" "+strconv.Itoa(resp.StatusCode)] = true
		return resp.Header, body
	}

	big := `{"title":"` + strings.Repeat("a", 70<<10) + `"}`
	var keyedID string
	taskID := func(body []byte) string {
		var c struct{ ID string }
		_ = json.Unmarshal(body, &c)
		return c.ID
	}
	retryAfter := func(t *testing.T, h http.Header, _ []byte) {
		if h.Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
	}
	for _, e := range []openAPIExchange{
		{name: "healthz", method: "GET", path: "/healthz", want: 200},
		{name: "readyz", method: "GET", path: "/readyz", want: 200},
		{name: "task", method: "POST", path: "/tasks", body: `{"title":"Buy milk"}`, want: 202},
		{name: "task with a key", method: "POST", path: "/tasks", key: `"openapi-1"`, body: `{"title":"Buy milk"}`, want: 202,
			check: func(_ *testing.T, _ http.Header, body []byte) { keyedID = taskID(body) }},
		{name: "the same again", method: "POST", path: "/tasks", key: `openapi-1`, body: `{"title":"Buy milk"}`, want: 202,
			check: func(t *testing.T, _ http.Header, body []byte) {
				pubs := fake.published()
				if id := taskID(body); id != keyedID || len(pubs) < 2 || pubs[len(pubs)-1] != pubs[len(pubs)-2] {
					t.Errorf("the retry got id %s (first %s) and published %v; want the first id and the same event again", id, keyedID, pubs)
				}
			}},
		{name: "the key with another task", method: "POST", path: "/tasks", key: `openapi-1`, body: `{"title":"Sell milk"}`, want: 422},
		{name: "malformed key", method: "POST", path: "/tasks", key: `a b`, body: `{"title":"x"}`, want: 400, invalidRequest: true},
		{name: "malformed JSON", method: "POST", path: "/tasks", body: `{"title": x}`, want: 400, invalidRequest: true},
		{name: "invalid task", method: "POST", path: "/tasks", body: `{"title":" ","priority":1}`, want: 422, invalidRequest: true},
		{name: "too large", method: "POST", path: "/tasks", body: big, want: 413, invalidRequest: true},
		{name: "not JSON", method: "POST", path: "/tasks", contentType: "text/plain", body: `{"title":"x"}`, want: 415, invalidRequest: true},
		{name: "pub/sub rejects", method: "POST", path: "/tasks", body: `{"title":"reject"}`, want: 502},
		{name: "pub/sub unavailable", method: "POST", path: "/tasks", body: `{"title":"unavailable"}`, want: 503, check: retryAfter},
		{name: "state store down", method: "POST", path: "/tasks", key: "openapi-2", body: `{"title":"x"}`, want: 503,
			before: func() { fake.state.Store("down") }, check: retryAfter},
		{name: "state store missing", method: "POST", path: "/tasks", key: "openapi-3", body: `{"title":"x"}`, want: 502,
			before: func() { fake.state.Store("missing") }},
		{name: "openapi.yaml", method: "GET", path: "/openapi.yaml", want: 200, before: func() { fake.state.Store("ok") },
			check: func(t *testing.T, h http.Header, body []byte) {
				if ct := h.Get("Content-Type"); ct != "application/yaml" || !bytes.Equal(body, raw) {
					t.Errorf("GET /openapi.yaml: Content-Type %q, %d bytes; want application/yaml and the file's %d bytes", ct, len(body), len(raw))
				}
			}},
	} {
		t.Run(e.name, func(t *testing.T) {
			if e.before != nil {
				e.before()
			}
			header, body := exchange(t, e)
			if e.check != nil {
				e.check(t, header, body)
			}
		})
	}

	// Not ready: the sidecar's outbound health fails, /readyz follows within an interval.
	t.Run("readyz not ready", func(t *testing.T) {
		fake.outbound.Store(http.StatusInternalServerError)
		defer fake.outbound.Store(http.StatusNoContent)
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		defer wcancel()
		if err := harness.WaitHTTP(wctx, app.URL+"/readyz", 503); err != nil {
			t.Fatal(err)
		}
		exchange(t, openAPIExchange{method: "GET", path: "/readyz", want: 503})
	})

	// A 500 cannot be provoked from outside (it is a panic or an error the publisher does
	// not know); the handler's unit tests cover it.
	delete(documented, "POST /tasks 500")
	for k := range documented {
		if !seen[k] {
			t.Errorf("publisher/openapi.yaml documents %s, but no request produced it", k)
		}
	}
	for k := range seen {
		if _, ok := documented[k]; !ok {
			t.Errorf("the publisher answered %s, which publisher/openapi.yaml does not document", k)
		}
	}
}

type openAPIExchange struct {
	name, method, path, key, contentType, body string
	want                                       int
	invalidRequest                             bool // the request breaks the document on purpose
	before                                     func()
	check                                      func(t *testing.T, h http.Header, body []byte)
}

func cmp(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func describe(errs []*valerrors.ValidationError) string {
	var b strings.Builder
	for _, e := range errs {
		fmt.Fprintf(&b, "  %s: %s\n", e.Message, e.Reason)
		for _, s := range e.SchemaValidationErrors {
			fmt.Fprintf(&b, "    %s at %s: %s\n", s.KeywordLocation, s.FieldPath, s.Reason)
		}
	}
	return b.String()
}

// openAPISidecar fakes the part of daprd's HTTP API the publisher calls. A title of
// "reject" or "unavailable" picks the publish answer; state is "ok", "down" (Redis
// unreachable) or "missing" (no such state store).
type openAPISidecar struct {
	*httptest.Server
	outbound atomic.Int32
	state    atomic.Value

	mu     sync.Mutex
	events []string
	keys   map[string]json.RawMessage
}

func newOpenAPISidecar(t *testing.T) *openAPISidecar {
	f := &openAPISidecar{keys: map[string]json.RawMessage{}}
	f.outbound.Store(http.StatusNoContent)
	f.state.Store("ok")
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *openAPISidecar) published() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.events)
}

func (f *openAPISidecar) serve(w http.ResponseWriter, r *http.Request) {
	answer := func(status int, body string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
	body, _ := io.ReadAll(r.Body)
	switch {
	case r.URL.Path == "/v1.0/healthz/outbound":
		w.WriteHeader(int(f.outbound.Load()))
	case r.URL.Path == "/v1.0/metadata":
		answer(200, `{"id":"task-api","components":[{"name":"pubsub","type":"pubsub.redis"},{"name":"statestore","type":"state.redis"}]}`)
	case r.URL.Path == "/v1.0/publish/pubsub/task-events":
		var ev struct{ Title string }
		_ = json.Unmarshal(body, &ev)
		switch ev.Title {
		case "reject":
			answer(404, `{"errorCode":"ERR_PUBSUB_NOT_FOUND","message":"pubsub pubsub is not found"}`)
		case "unavailable":
			answer(500, `{"errorCode":"ERR_PUBSUB_PUBLISH_MESSAGE","message":"error when publish to topic task-events in pubsub pubsub"}`)
		default:
			f.mu.Lock()
			f.events = append(f.events, r.URL.RawQuery+" "+string(body))
			f.mu.Unlock()
			w.WriteHeader(http.StatusNoContent)
		}
	case strings.HasPrefix(r.URL.Path, "/v1.0/state/statestore"):
		switch f.state.Load() {
		case "down":
			answer(500, `{"errorCode":"ERR_STATE_SAVE","message":"failed saving state in state store statestore: connection refused"}`)
			return
		case "missing":
			answer(400, `{"errorCode":"ERR_STATE_STORE_NOT_FOUND","message":"state store statestore is not found"}`)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if r.Method == http.MethodGet {
			v, ok := f.keys[strings.TrimPrefix(r.URL.Path, "/v1.0/state/statestore/")]
			if !ok {
				w.WriteHeader(http.StatusNoContent)
				return
			}
			answer(200, string(v))
			return
		}
		var items []struct {
			Key   string
			Value json.RawMessage
		}
		_ = json.Unmarshal(body, &items)
		for _, it := range items {
			if _, taken := f.keys[it.Key]; taken {
				answer(409, `{"errorCode":"ERR_STATE_SAVE","message":"possible etag mismatch"}`)
				return
			}
			f.keys[it.Key] = it.Value
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		http.NotFound(w, r)
	}
}
