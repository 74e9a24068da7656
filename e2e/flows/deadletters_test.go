package flows

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/taskevents/taskevents/e2e/internal/suite"
	"github.com/taskevents/taskevents/tools/harness"
)

type keptDeadLetters struct {
	Count       int `json:"count"`
	DeadLetters []struct {
		ID      string `json:"id"`
		EventID string `json:"event_id"`
		TaskID  string `json:"task_id"`
		Topic   string `json:"topic"`
	} `json:"deadletters"`
}

// A task the worker cannot handle (a bug, simulated by FAULT_DROP_TITLE) is answered DROP,
// goes to the dead-letter topic and is kept in the state store. The cause is fixed (the
// worker restarts without the fault), an operator lists the dead letters and replays it,
// and it is handled exactly once, with its original id.
func TestDeadLetterReplay(t *testing.T) {
	for _, broker := range suite.Brokers() {
		t.Run(broker, func(t *testing.T) {
			sys := suite.StartSystem(t, broker, harness.SystemOptions{WorkerEnv: []string{"FAULT_DROP_TITLE=poison"}})
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			w := sys.Workers[0]
			c, r, err := suite.CreateTask(ctx, sys.Publisher, "poison pill")
			if err != nil || r.Status != http.StatusAccepted {
				t.Fatalf("POST /tasks = %d %s (%v)", r.Status, r.Body, err)
			}
			if _, err := w.WaitForLine(ctx, func(l string) bool {
				return strings.Contains(l, `"DEAD LETTER"`) && strings.Contains(l, c.ID) && strings.Contains(l, `"kept":true`)
			}); err != nil {
				t.Fatalf("the dropped task was never kept as a dead letter: %v\n%s", err, w.Tail(20))
			}
			var kept keptDeadLetters
			admin(ctx, t, http.MethodGet, w.URL+"/admin/deadletters", http.StatusOK, &kept)
			if kept.Count != 1 || kept.DeadLetters[0].EventID != c.ID || kept.DeadLetters[0].Topic != suite.Contract.Topic {
				t.Fatalf("dead letters = %+v, want the one task %s from task-events", kept, c.ID)
			}

			// The fix ships: the worker restarts without the fault. The dead letter is
			// still there, because it lives in the state store, not in the process.
			old := w.Process
			w.Setenv("FAULT_DROP_TITLE", "")
			if err := w.Restart(ctx); err != nil {
				t.Fatal(err)
			}
			admin(ctx, t, http.MethodGet, w.URL+"/admin/deadletters", http.StatusOK, &kept)
			if kept.Count != 1 {
				t.Fatalf("after the restart %d dead letters are kept, want 1", kept.Count)
			}
			var replayed map[string]string
			admin(ctx, t, http.MethodPost, w.URL+"/admin/deadletters/"+kept.DeadLetters[0].ID+"/replay", http.StatusAccepted, &replayed)
			tally := suite.WaitHandled(t, sys.Workers, map[string]string{c.ID: c.Title}, 30*time.Second)
			handled := harness.Events(w.Lines(), "EVENT RECEIVED")
			ids := []string{}
			for _, e := range handled {
				if e.Outcome == "SUCCESS" && !e.Duplicate {
					ids = append(ids, e.EventID)
				}
			}
			if !slices.Equal(ids, []string{c.ID}) {
				t.Errorf("handled after the replay: %v, want exactly the original id %s", ids, c.ID)
			}
			admin(ctx, t, http.MethodGet, w.URL+"/admin/deadletters", http.StatusOK, &kept)
			if kept.Count != 0 {
				t.Errorf("after the replay %d dead letters are still kept", kept.Count)
			}
			drops := len(harness.Events(old.Lines(), "EVENT RECEIVED"))
			suite.Summarize(t, broker, "deadletter-replay", map[string]string{c.ID: c.Title}, tally,
				fmt.Sprintf(" dropped=%d kept=1 replayed=1", drops))
		})
	}
}

// admin calls a worker admin route and decodes the JSON answer into v.
func admin(ctx context.Context, t *testing.T, method, url string, want int, v any) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := suite.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s %s = %d %s, want %d", method, url, resp.StatusCode, b, want)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
}
