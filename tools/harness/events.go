package harness

import (
	"encoding/json"
	"strings"
)

// WorkerEvent is one "EVENT RECEIVED" / "DEAD LETTER" log line of a worker.
type WorkerEvent struct {
	Msg       string `json:"message"`
	EventID   string `json:"event_id"`
	TaskID    string `json:"task_id"`
	Title     string `json:"title"`
	Type      string `json:"type"`
	Topic     string `json:"topic"`
	Outcome   string `json:"outcome"`
	Duplicate bool   `json:"duplicate"`
	Reason    string `json:"reason"`
}

// Events parses a worker's JSON log lines whose message is msg; other lines are skipped.
func Events(lines []string, msg string) []WorkerEvent {
	var out []WorkerEvent
	for _, l := range lines {
		if !strings.HasPrefix(l, "{") || !strings.Contains(l, msg) {
			continue
		}
		var e WorkerEvent
		if json.Unmarshal([]byte(l), &e) == nil && e.Msg == msg {
			out = append(out, e)
		}
	}
	return out
}

// Tally counts, over all workers, how often each task id was handled (SUCCESS, not a
// duplicate) and how many deliveries were answered as duplicates.
type Tally struct {
	Handled    map[string]int // task id → times handled
	PerWorker  []int          // handled count per worker
	Duplicates int
	Retries    int
	Drops      int
}

// TallyWorkers reads every worker's log.
func TallyWorkers(workers []*App) Tally {
	t := Tally{Handled: map[string]int{}, PerWorker: make([]int, len(workers))}
	for i, w := range workers {
		for _, e := range Events(w.Lines(), "EVENT RECEIVED") {
			switch {
			case e.Outcome == "SUCCESS" && e.Duplicate:
				t.Duplicates++
			case e.Outcome == "SUCCESS":
				t.Handled[e.TaskID]++
				t.PerWorker[i]++
			case e.Outcome == "RETRY":
				t.Retries++
			case e.Outcome == "DROP":
				t.Drops++
			}
		}
	}
	return t
}
