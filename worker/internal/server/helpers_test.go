package server

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/taskevents/taskevents/kit/logging"
	"github.com/taskevents/taskevents/worker/internal/dedupe"
	"github.com/taskevents/taskevents/worker/internal/handler"
	"github.com/taskevents/taskevents/worker/internal/metrics"
	"github.com/taskevents/taskevents/worker/internal/taskevent"
	"github.com/taskevents/taskevents/worker/internal/taskevent/eventtest"
)

// Short names for the shared fixtures (eventtest), used throughout this package's tests.
const (
	taskID        = eventtest.TaskID
	eventID       = eventtest.EventID
	tp            = eventtest.TraceParent
	daprdEnvelope = eventtest.DaprdEnvelope
	taskJSON      = eventtest.TaskJSON
	token         = "tok-3c1d0f3e9a"
)

func envelope(t testing.TB, pairs ...string) string {
	t.Helper()
	return eventtest.Edit(t, pairs...)
}

func withID(t testing.TB, id string) string {
	return envelope(t, `"id":"`+eventID+`"`, `"id":"`+id+`"`)
}

// recorder is a Handler that counts calls and runs an optional behaviour.
type recorder struct {
	mu    sync.Mutex
	calls []taskevent.Event
	do    func(ctx context.Context, ev taskevent.Event) error
}

func (r *recorder) Handle(ctx context.Context, ev taskevent.Event) error {
	r.mu.Lock()
	r.calls = append(r.calls, ev)
	do := r.do
	r.mu.Unlock()
	if do != nil {
		return do(ctx, ev)
	}
	return nil
}

func (r *recorder) count() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.calls) }

type harness struct {
	t       testing.TB
	srv     http.Handler
	ops     http.Handler
	logs    *logging.Buffer
	metrics *metrics.Metrics
	store   *dedupe.Store
	rec     *recorder
}

func newHarness(t testing.TB, h handler.Handler, mods ...func(*Deps)) *harness {
	t.Helper()
	logs := &logging.Buffer{}
	m := metrics.New()
	store := dedupe.New(1000, time.Hour, time.Now)
	rec, _ := h.(*recorder)
	if h == nil {
		rec = &recorder{}
		h = rec
	}
	o := Deps{
		Logger:         zerolog.New(logs).With().Timestamp().Logger(),
		Handler:        h,
		Ledger:         store,
		Metrics:        m,
		MaxEventBytes:  1 << 20,
		HandlerTimeout: 5 * time.Second,
	}
	for _, mod := range mods {
		mod(&o)
	}
	return &harness{t: t, srv: New(o), ops: Ops(o), logs: logs, metrics: m, store: store, rec: rec}
}

func cloudEventHeader() http.Header {
	return http.Header{"Content-Type": {"application/cloudevents+json"}}
}

// deliver POSTs body to path on a fresh harness whose body limit is maxBytes (0: the
// default), with daprd's CloudEvent content type unless header is given.
func deliver(t testing.TB, path string, header http.Header, body string, maxBytes int64) (*harness, *httptest.ResponseRecorder) {
	t.Helper()
	h := newHarness(t, nil, func(o *Deps) {
		if maxBytes > 0 {
			o.MaxEventBytes = maxBytes
		}
	})
	if header == nil {
		header = cloudEventHeader()
	}
	return h, h.do(http.MethodPost, path, header, body)
}

func (h *harness) do(method, path string, header http.Header, body string) *httptest.ResponseRecorder {
	return h.doCtx(context.Background(), method, path, header, body)
}

func (h *harness) doCtx(ctx context.Context, method, path string, header http.Header, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequestWithContext(ctx, method, path, strings.NewReader(body))
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.srv.ServeHTTP(rec, req)
	return rec
}

// deliver posts body to /events/todo the way daprd does.
func (h *harness) deliver(body string) *httptest.ResponseRecorder {
	return h.do(http.MethodPost, "/events/todo", cloudEventHeader(), body)
}

// status checks the reply is a 200 JSON status and returns the status.
func status(t testing.TB, rec *httptest.ResponseRecorder) string {
	t.Helper()
	if rec.Code != http.StatusOK {
		t.Fatalf("code = %d, want 200 (body %s)", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q", ct)
	}
	var reply struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &reply); err != nil {
		t.Fatalf("reply %q: %v", rec.Body, err)
	}
	return reply.Status
}

// lines parses every log line.
func (h *harness) lines() []map[string]any {
	h.t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(h.logs.String()))
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			h.t.Fatalf("log line %q is not JSON: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// withMsg returns the log lines with message msg.
func (h *harness) withMsg(msg string) []map[string]any {
	var out []map[string]any
	for _, l := range h.lines() {
		if l["message"] == msg {
			out = append(out, l)
		}
	}
	return out
}

// lastLine returns the only log line, failing unless there is exactly one.
func (h *harness) onlyLine() map[string]any {
	h.t.Helper()
	ls := h.lines()
	if len(ls) != 1 {
		h.t.Fatalf("want exactly 1 log line, got %d:\n%s", len(ls), h.logs)
	}
	return ls[0]
}

func (h *harness) scrape() string {
	h.t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	rec := httptest.NewRecorder()
	h.ops.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		h.t.Fatalf("/metrics: %d", rec.Code)
	}
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}
