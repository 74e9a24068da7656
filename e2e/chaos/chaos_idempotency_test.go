package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskevents/taskevents/e2e/internal/suite"
	"github.com/taskevents/taskevents/tools/harness"
)

// idempotency-retry: a client sends every POST /tasks twice with the same Idempotency-Key
// and body: half of them retry after the first answer (it was lost on the way back), half
// while the first is still in flight (the client gave up waiting). Both answers are 202
// with the same task id, and exactly one task per key is handled: the retry republishes
// the same CloudEvent id, which the worker recognises as a duplicate.
func chaosIdempotencyRetry(t *testing.T, broker string) {
	keys := sized(100, 1000)
	r := startRig(t, broker, harness.SystemOptions{}, rigOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	type attempt struct {
		status int
		id     string
		body   string
		err    error
	}
	postOnce := func(key, title string) attempt {
		body, _ := json.Marshal(map[string]string{"title": title})
		rep, err := suite.Post(ctx, r.sys.Publisher.URL+"/tasks", "application/json", string(body),
			map[string]string{"Idempotency-Key": key})
		a := attempt{status: rep.Status, body: string(rep.Body), err: err}
		var c suite.Created
		if err == nil && rep.Status == http.StatusAccepted && json.Unmarshal(rep.Body, &c) == nil {
			a.id = c.ID
		}
		return a
	}
	type result struct {
		key, title    string
		first, second attempt
	}
	results := make([]result, keys)
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i := range keys {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			res := result{key: uuid.NewString(), title: fmt.Sprintf("idempotent task %d", i)}
			if i%2 == 0 {
				res.first = postOnce(res.key, res.title)
				res.second = postOnce(res.key, res.title)
			} else {
				var pair sync.WaitGroup
				pair.Go(func() { res.first = postOnce(res.key, res.title) })
				pair.Go(func() { res.second = postOnce(res.key, res.title) })
				pair.Wait()
			}
			results[i] = res
		})
	}
	wg.Wait()

	accepted := map[string]string{}
	sameID, bad := 0, 0
	for i, res := range results {
		mode := "after the first answer"
		if i%2 == 1 {
			mode = "concurrently"
		}
		switch {
		case res.first.err != nil || res.second.err != nil:
			t.Errorf("key %s: POST /tasks failed: %v / %v", res.key, res.first.err, res.second.err)
		case res.first.status != http.StatusAccepted || res.second.status != http.StatusAccepted:
			t.Errorf("key %s (retried %s): answers %d %s and %d %s, want 202 twice",
				res.key, mode, res.first.status, res.first.body, res.second.status, res.second.body)
		case res.first.id != res.second.id:
			t.Errorf("key %s (retried %s): the first POST got task %s, the retry with the same Idempotency-Key task %s: "+
				"POST /tasks does not honour Idempotency-Key", res.key, mode, res.first.id, res.second.id)
		default:
			sameID++
			if prev, dup := accepted[res.first.id]; dup {
				t.Errorf("two keys got the same task id %s (%q and %q)", res.first.id, prev, res.title)
			}
			accepted[res.first.id] = res.title
			continue
		}
		if bad++; bad >= 5 {
			t.Fatalf("giving up after %d keys with wrong answers", bad)
		}
	}

	records := -1
	v := r.judge("idempotency-retry", accepted, settleWithin(), func() string {
		n, err := r.countRecords(context.Background())
		if err != nil {
			t.Errorf("count the task records: %v", err)
		}
		records = n
		return fmt.Sprintf(" keys=%d requests=%d same_id=%d task_records=%d", keys, 2*keys, sameID, records)
	})
	if records != keys {
		t.Errorf("the state store holds %d task records for %d keys, want exactly one per key", records, keys)
	}
	if v.handled != keys {
		t.Errorf("%d of %d keys' tasks were handled", v.handled, keys)
	}
}
