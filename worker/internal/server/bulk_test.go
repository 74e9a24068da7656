package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/taskevents/taskevents/kit/sidecar"
	"github.com/taskevents/taskevents/kit/sidecar/sidecartest"
	"github.com/taskevents/taskevents/worker/internal/dedupe"
	"github.com/taskevents/taskevents/worker/internal/handler"
	"github.com/taskevents/taskevents/worker/internal/taskevent"
)

// task returns daprd's envelope for task n (its own CloudEvent id and task id) titled title.
func task(t testing.TB, n int, title string) string {
	return envelope(t,
		`"id":"`+eventID+`"`, fmt.Sprintf(`"id":"ev-%04d"`, n),
		taskID, fmt.Sprintf("3f0c8a51-6b7e-4d2a-9c1e-%012d", n),
		`"title":"Learn Dapr pub/sub"`, `"title":`+mustJSON(t, title))
}

func mustJSON(t testing.TB, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// entry is one entry of a batch; event is raw JSON.
type entry struct{ id, event, contentType string }

// batchBody builds a bulk delivery as daprd 1.18 sends it.
func batchBody(t testing.TB, entries ...entry) string {
	parts := make([]string, len(entries))
	for i, e := range entries {
		ct := e.contentType
		if ct == "" {
			ct = "application/cloudevents+json"
		}
		parts[i] = `{"entryId":` + mustJSON(t, e.id) + `,"event":` + e.event + `,"contentType":"` + ct + `","metadata":null}`
	}
	return `{"entries":[` + strings.Join(parts, ",") + `],"id":"batch-1","metadata":{"pubsubName":"pubsub"},` +
		`"pubsubname":"pubsub","topic":"task-events","type":"com.dapr.event.sent.bulk"}`
}

// deliverBatch POSTs a batch the way daprd does (application/json) and returns the
// status of each entry id.
func (h *harness) deliverBatch(body string) map[string]string {
	h.t.Helper()
	rec := h.do(http.MethodPost, "/events/todo", http.Header{"Content-Type": {"application/json"}}, body)
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
		h.t.Fatalf("batch answered %d %q: %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	var answer struct {
		Statuses []struct{ EntryID, Status string }
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil || answer.Statuses == nil {
		h.t.Fatalf("batch answer %q: %v", rec.Body, err)
	}
	got := map[string]string{}
	for _, s := range answer.Statuses {
		if _, dup := got[s.EntryID]; dup {
			h.t.Fatalf("entry %s answered twice: %s", s.EntryID, rec.Body)
		}
		got[s.EntryID] = s.Status
	}
	return got
}

// byTitle fails permanently for "poison" and for now for "flaky".
func byTitle(_ context.Context, ev taskevent.Event) error {
	switch ev.Task.Title {
	case "poison":
		return handler.Permanent(errors.New("poison task"))
	case "flaky":
		return errors.New("downstream unavailable")
	}
	return nil
}

// stateHarness is a server on the durable ledger against a fake sidecar.
func stateHarness(t *testing.T, h handler.Handler, concurrency int) (*harness, *sidecartest.Fake) {
	t.Helper()
	fake := sidecartest.New(t)
	client := sidecar.New(sidecar.Options{BaseURL: fake.URL, Timeout: 5 * time.Second})
	hs := newHarness(t, h, func(o *Deps) {
		o.Ledger = dedupe.NewStateLedger(client, "statestore", 15*time.Second, time.Hour, time.Now)
		o.BulkConcurrency = concurrency
		o.HandlerTimeout = 2 * time.Second
	})
	return hs, fake
}

// Each entry of a batch gets the answer it would get alone, whatever its siblings get,
// on both ledgers and whether entries run one at a time or together.
func TestBatchOutcomes(t *testing.T) {
	type want struct {
		status  string
		handled bool // recorded as handled in the ledger (state ledger only)
	}
	tests := []struct {
		name    string
		entries func(t testing.TB) []entry
		want    map[string]want
		// wantLines is the number of log lines (one per entry that has any id at all).
		wantLines int
	}{
		{
			name: "mixed outcomes",
			entries: func(t testing.TB) []entry {
				return []entry{{"ok", task(t, 1, "fine"), ""}, {"drop", task(t, 2, "poison"), ""}, {"retry", task(t, 3, "flaky"), ""}, {"ok2", task(t, 4, "also fine"), ""}}
			},
			want:      map[string]want{"ok": {"SUCCESS", true}, "drop": {"DROP", false}, "retry": {"RETRY", false}, "ok2": {"SUCCESS", true}},
			wantLines: 4,
		},
		{
			name: "the same event twice in one batch is handled once",
			entries: func(t testing.TB) []entry {
				return []entry{{"a", task(t, 1, "fine"), ""}, {"b", task(t, 1, "fine"), ""}}
			},
			want:      map[string]want{"a": {"SUCCESS", true}, "b": {"SUCCESS", true}},
			wantLines: 2,
		},
		{
			name: "malformed entries cost only themselves",
			entries: func(t testing.TB) []entry {
				return []entry{{"ok", task(t, 1, "fine"), ""}, {"notjson", `{"id":1}`, ""}, {"invalid", `{"specversion":"1.0"}`, ""}, {"blank", task(t, 2, " "), ""}, {"", task(t, 3, "no id"), ""}, {"noevent", `null`, ""}}
			},
			want:      map[string]want{"ok": {"SUCCESS", true}, "notjson": {"DROP", false}, "invalid": {"DROP", false}, "blank": {"DROP", false}, "noevent": {"DROP", false}},
			wantLines: 6,
		},
		{
			name: "a raw payload entry is not a CloudEvent",
			entries: func(t testing.TB) []entry {
				return []entry{{"raw", `"eyJ0aXRsZSI6InJhdyJ9"`, "application/octet-stream"}, {"ok", task(t, 1, "fine"), ""}}
			},
			want:      map[string]want{"raw": {"DROP", false}, "ok": {"SUCCESS", true}},
			wantLines: 2,
		},
		{
			name:    "empty batch",
			entries: func(testing.TB) []entry { return nil },
			want:    map[string]want{},
		},
	}
	for _, tt := range tests {
		for _, ledger := range []string{"memory", "state"} {
			for _, conc := range []int{1, 8} {
				t.Run(fmt.Sprintf("%s/%s/concurrency=%d", tt.name, ledger, conc), func(t *testing.T) {
					rec := &recorder{do: byTitle}
					var h *harness
					var fake *sidecartest.Fake
					if ledger == "state" {
						h, fake = stateHarness(t, rec, conc)
					} else {
						h = newHarness(t, rec, func(o *Deps) { o.BulkConcurrency = conc })
					}
					got := h.deliverBatch(batchBody(t, tt.entries(t)...))
					if len(got) != len(tt.want) {
						t.Errorf("answered %v, want %v", got, tt.want)
					}
					for id, w := range tt.want {
						if got[id] != w.status {
							t.Errorf("entry %s = %q, want %s", id, got[id], w.status)
						}
					}
					lines := h.lines()
					if len(lines) != tt.wantLines {
						t.Errorf("%d log lines, want %d:\n%s", len(lines), tt.wantLines, h.logs)
					}
					for _, l := range lines {
						if l["batch_size"] != float64(len(tt.entries(t))) || l["outcome"] == nil || l["duration_ms"] == nil {
							t.Errorf("log line lacks batch_size, outcome or duration: %v", l)
						}
					}
					if fake != nil {
						handled := map[string]bool{}
						for _, k := range fake.Keys("statestore", "task-") {
							handled[k] = true
						}
						for _, e := range tt.entries(t) {
							w, ok := tt.want[e.id]
							if !ok {
								continue
							}
							var ev struct {
								Data struct {
									TaskID string `json:"task_id"`
								}
							}
							_ = json.Unmarshal([]byte(e.event), &ev)
							if ev.Data.TaskID != "" && handled["task-"+ev.Data.TaskID] != w.handled {
								t.Errorf("entry %s: recorded as handled = %v, want %v", e.id, !w.handled, w.handled)
							}
						}
					}
				})
			}
		}
	}
}

// The duplicate within a batch calls the handler once and is logged as a duplicate.
func TestBatchDuplicateHandledOnce(t *testing.T) {
	for _, conc := range []int{1, 8} {
		t.Run(fmt.Sprintf("concurrency=%d", conc), func(t *testing.T) {
			rec := &recorder{}
			h, _ := stateHarness(t, rec, conc)
			got := h.deliverBatch(batchBody(t, entry{"a", task(t, 7, "fine"), ""}, entry{"b", task(t, 7, "fine"), ""}))
			if got["a"] != "SUCCESS" || got["b"] != "SUCCESS" {
				t.Fatalf("answers %v", got)
			}
			if rec.count() != 1 {
				t.Errorf("handler ran %d times, want once", rec.count())
			}
			dups := 0
			for _, l := range h.withMsg(MsgReceived) {
				if l["duplicate"] == true {
					dups++
				}
			}
			if dups != 1 {
				t.Errorf("%d lines marked duplicate, want 1:\n%s", dups, h.logs)
			}
			// Redelivered whole (daprd retries what it did not get an answer for), nothing runs again.
			h.deliverBatch(batchBody(t, entry{"a2", task(t, 7, "fine"), ""}))
			if rec.count() != 1 {
				t.Errorf("the redelivery ran the handler again")
			}
		})
	}
}

// The body cap: a batch of 100 of the largest task events the publisher sends (200-character
// titles of 4-byte characters) fits under the default MAX_BATCH_BYTES; a batch past it, and
// a single event past MAX_EVENT_BYTES inside a batch, are refused without running anything.
func TestBatchBodyLimits(t *testing.T) {
	const defaultBatchBytes, defaultEventBytes = 4 << 20, 1 << 20
	big := strings.Repeat("😀", 200)
	entries := make([]entry, 100)
	for i := range entries {
		entries[i] = entry{fmt.Sprintf("e%d", i), task(t, i, big), ""}
	}
	full := batchBody(t, entries...)
	if len(full) > defaultBatchBytes/4 {
		t.Fatalf("a batch of 100 is %d bytes: the default limit leaves too little room", len(full))
	}

	tests := []struct {
		name       string
		body       string
		batchBytes int64
		eventBytes int64
		wantAll    string // every entry's status; "" means a single DROP answer
		wantReason string
	}{
		{name: "100 large events under the defaults", body: full, batchBytes: defaultBatchBytes, eventBytes: defaultEventBytes, wantAll: "SUCCESS"},
		{name: "batch past MAX_BATCH_BYTES", body: full, batchBytes: int64(len(full) - 1), eventBytes: 2048, wantReason: "exceeds MAX_BATCH_BYTES"},
		{name: "one entry past MAX_EVENT_BYTES", body: batchBody(t, entry{"big", task(t, 1, big), ""}), batchBytes: defaultBatchBytes, eventBytes: 600, wantAll: "DROP", wantReason: "exceeds MAX_EVENT_BYTES (600 bytes)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil, func(o *Deps) {
				o.MaxBatchBytes, o.MaxEventBytes, o.BulkConcurrency = tt.batchBytes, tt.eventBytes, 8
			})
			if tt.wantAll == "" {
				if got := status(t, h.do(http.MethodPost, "/events/todo", http.Header{"Content-Type": {"application/json"}}, tt.body)); got != "DROP" {
					t.Fatalf("status = %s, want DROP", got)
				}
			} else {
				for id, s := range h.deliverBatch(tt.body) {
					if s != tt.wantAll {
						t.Errorf("entry %s = %s, want %s", id, s, tt.wantAll)
					}
				}
			}
			if tt.wantAll != "SUCCESS" && h.rec.count() != 0 {
				t.Errorf("the handler ran %d times", h.rec.count())
			}
			if tt.wantReason != "" && !strings.Contains(h.logs.String(), tt.wantReason) {
				t.Errorf("log lacks %q:\n%.2000s", tt.wantReason, h.logs)
			}
		})
	}
}

// A body that claims to be a batch but whose entries cannot be read gets an empty
// answer (daprd retries every entry) and a rejection in the log; a single CloudEvent
// that merely mentions "entries" is still a single event.
func TestBatchEnvelopeShapes(t *testing.T) {
	h := newHarness(t, nil)
	rec := h.do(http.MethodPost, "/events/todo", http.Header{"Content-Type": {"application/json"}}, `{"entries":"nope"}`)
	if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != `{"statuses":[]}` {
		t.Errorf("unreadable batch answered %d %s", rec.Code, rec.Body)
	}
	if len(h.withMsg(MsgRejected)) != 1 {
		t.Errorf("no rejection logged:\n%s", h.logs)
	}

	h = newHarness(t, nil)
	single := envelope(t, `"title":"Learn Dapr pub/sub"`, `"title":"\"entries\": a title"`)
	for _, ct := range []string{"application/json", "application/cloudevents+json"} {
		if got := status(t, h.do(http.MethodPost, "/events/todo", http.Header{"Content-Type": {ct}}, single)); got != "SUCCESS" {
			t.Errorf("%s: single event mentioning entries = %s", ct, got)
		}
	}
}

// A batch whose delivery is canceled (daprd hung up at its timeout) does not start the
// entries it has not reached; the ones running finish.
func TestBatchCanceled(t *testing.T) {
	started := make(chan struct{}, 10)
	release := make(chan struct{})
	rec := &recorder{do: func(context.Context, taskevent.Event) error {
		started <- struct{}{}
		<-release
		return nil
	}}
	h := newHarness(t, rec, func(o *Deps) { o.BulkConcurrency = 1 })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan map[string]string, 1)
	go func() {
		r := h.doCtx(ctx, http.MethodPost, "/events/todo", http.Header{"Content-Type": {"application/json"}},
			batchBody(t, entry{"a", task(t, 1, "x"), ""}, entry{"b", task(t, 2, "y"), ""}, entry{"c", task(t, 3, "z"), ""}))
		var answer struct {
			Statuses []struct{ EntryID, Status string }
		}
		_ = json.Unmarshal(r.Body.Bytes(), &answer)
		m := map[string]string{}
		for _, s := range answer.Statuses {
			m[s.EntryID] = s.Status
		}
		done <- m
	}()
	<-started
	cancel()
	close(release)
	got := <-done
	if got["a"] != "SUCCESS" || got["b"] != "RETRY" || got["c"] != "RETRY" {
		t.Errorf("answers %v, want a SUCCESS, b and c RETRY", got)
	}
	if rec.count() != 1 {
		t.Errorf("handler ran %d times, want 1", rec.count())
	}
}
