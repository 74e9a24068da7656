package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/taskevents/taskevents/kit/logging"
	"github.com/taskevents/taskevents/worker/internal/bulk"
	"github.com/taskevents/taskevents/worker/internal/dedupe"
	"github.com/taskevents/taskevents/worker/internal/handler"
	"github.com/taskevents/taskevents/worker/internal/metrics"
	"github.com/taskevents/taskevents/worker/internal/server"
	"github.com/taskevents/taskevents/worker/internal/taskevent"
	"github.com/taskevents/taskevents/worker/internal/taskevent/eventtest"
)

// FuzzDeliverBatch drives the server with any bulk delivery. The property: 200 with a
// statuses list; every answered entryId is one the batch holds, answered once, with a
// status daprd knows; every entry with an id and an event is answered, SUCCESS when its
// event parses and DROP when it does not (the handler never fails, so RETRY would
// redeliver a malformed entry forever); every log line is JSON.
func FuzzDeliverBatch(f *testing.F) {
	// Entries of a batch log from several goroutines.
	var logs logging.Buffer
	srv := server.New(server.Deps{
		Logger:          zerolog.New(&logs),
		Handler:         handler.Accept{},
		Ledger:          dedupe.New(1000, time.Hour, time.Now),
		Metrics:         metrics.New(),
		MaxEventBytes:   4 << 10,
		MaxBatchBytes:   64 << 10,
		BulkConcurrency: 4,
		HandlerTimeout:  time.Second,
	})
	for _, s := range []string{
		`{"entries":[{"entryId":"a","event":` + eventtest.DaprdEnvelope + `,"contentType":"application/cloudevents+json"}],"pubsubname":"pubsub","topic":"task-events"}`,
		`{"entries":[{"entryId":"a","event":` + eventtest.DaprdEnvelope + `},{"entryId":"b","event":{"specversion":"1.0"}}]}`,
		`{"entries":[{"entryId":"r","event":"eyJhIjoxfQ==","contentType":"application/octet-stream"}]}`,
		`{"entries":[7,null,{"entryId":""},{"entryId":"x","event":null}]}`,
		`{"entries":[]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		b, perr := bulk.Parse(body)
		if perr != nil || len(body) > 64<<10 {
			return // not a batch: FuzzDeliverEvent's ground
		}
		logs.Reset()
		req := httptest.NewRequest(http.MethodPost, "/events/todo", bytes.NewReader(body))
		req.Header = http.Header{"Content-Type": {"application/json"}}
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("code %d: %s", rec.Code, rec.Body)
		}
		var answer bulk.Answer
		if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil || answer.Statuses == nil {
			t.Fatalf("answer %q: %v", rec.Body, err)
		}
		want := map[string]string{}
		for _, e := range b.Entries {
			switch {
			case e.EntryID == "":
			case e.Err != nil || len(e.Event) > 4<<10:
				want[e.EntryID] = "DROP"
			default:
				ct := e.ContentType
				if ct == "" {
					ct = "application/cloudevents+json"
				}
				if _, err := taskevent.Parse(http.Header{"Content-Type": {ct}}, e.Event); err != nil {
					want[e.EntryID] = "DROP"
				} else if _, seen := want[e.EntryID]; !seen {
					want[e.EntryID] = "SUCCESS"
				}
			}
		}
		got := map[string]string{}
		for _, s := range answer.Statuses {
			if s.Status != "SUCCESS" && s.Status != "DROP" {
				t.Fatalf("entry %q answered %q", s.EntryID, s.Status)
			}
			if _, ok := want[s.EntryID]; !ok {
				t.Fatalf("answered entry %q, which the batch does not hold", s.EntryID)
			}
			got[s.EntryID] = s.Status
		}
		for id, w := range want {
			// An id used twice may get either entry's answer.
			if g, ok := got[id]; !ok || (g != w && countID(b, id) == 1) {
				t.Fatalf("entry %q answered %q, want %s: %s", id, g, w, rec.Body)
			}
		}
		for _, line := range bytes.Split(bytes.TrimSpace(logs.Bytes()), []byte("\n")) {
			if len(line) > 0 && !json.Valid(line) {
				t.Fatalf("log line is not JSON: %s", line)
			}
		}
	})
}

func countID(b bulk.Batch, id string) int {
	n := 0
	for _, e := range b.Entries {
		if e.EntryID == id {
			n++
		}
	}
	return n
}
