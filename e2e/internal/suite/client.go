package flows

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskevents/taskevents/tools/harness"
)

var client = &http.Client{
	Timeout:   15 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 64},
}

type created struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	Event string `json:"event"`
}

type reply struct {
	Status int
	Header http.Header
	Body   []byte
}

func post(ctx context.Context, url, contentType, body string, header map[string]string) (reply, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return reply{}, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, b}, err
}

// createTask is the README's curl: POST /tasks {"title": …}.
func createTask(ctx context.Context, publisher *harness.App, title string) (created, reply, error) {
	body, _ := json.Marshal(map[string]string{"title": title})
	r, err := post(ctx, publisher.URL+"/tasks", "application/json", string(body), nil)
	if err != nil {
		return created{}, r, err
	}
	var c created
	if r.Status == http.StatusAccepted {
		err = json.Unmarshal(r.Body, &c)
	}
	return c, r, err
}

// publishMany creates n tasks with conc concurrent clients and returns the accepted ones.
func publishMany(t *testing.T, publisher *harness.App, n, conc int) map[string]string {
	t.Helper()
	accepted, failures := publishAll(publisher, n, conc)
	if len(failures) > 0 {
		t.Fatalf("%d of %d publishes failed, first: %s", len(failures), n, failures[0])
	}
	return accepted
}

// publishAll is publishMany for use outside the test goroutine: it reports failures
// instead of failing the test.
func publishAll(publisher *harness.App, n, conc int) (map[string]string, []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var (
		mu       sync.Mutex
		accepted = map[string]string{}
		failures []string
		wg       sync.WaitGroup
		next     = make(chan int)
	)
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				title := fmt.Sprintf("task %d", i)
				c, r, err := createTask(ctx, publisher, title)
				mu.Lock()
				switch {
				case err != nil:
					failures = append(failures, err.Error())
				case r.Status != http.StatusAccepted:
					failures = append(failures, fmt.Sprintf("%d %s", r.Status, r.Body))
				default:
					accepted[c.ID] = title
				}
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return accepted, failures
}

// waitHandled waits until every id in want was handled by some worker, or the deadline.
func waitHandled(t *testing.T, workers []*harness.App, want map[string]string, within time.Duration) harness.Tally {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		tally := harness.TallyWorkers(workers)
		missing := 0
		for id := range want {
			if tally.Handled[id] == 0 {
				missing++
			}
		}
		if missing == 0 {
			return tally
		}
		if time.Now().After(deadline) {
			t.Errorf("after %s, %d of %d tasks were never handled", within, missing, len(want))
			return tally
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// summarize checks that each published task was handled exactly once and prints the
// scenario's one-line summary.
func summarize(t *testing.T, broker, scenario string, published map[string]string, tally harness.Tally, extra string) {
	t.Helper()
	lost, handledTwice, handled := 0, 0, 0
	var lostIDs []string
	for id := range published {
		switch n := tally.Handled[id]; {
		case n == 0:
			lost++
			lostIDs = append(lostIDs, id)
		case n > 1:
			handledTwice += n - 1
		}
		handled += min(tally.Handled[id], 1)
	}
	line := fmt.Sprintf("e2e %s %s: published=%d handled=%d lost=%d duplicates=%d%s",
		broker, scenario, len(published), handled, lost, tally.Duplicates+handledTwice, extra)
	fmt.Println(line)
	if lost > 0 {
		sort.Strings(lostIDs)
		t.Errorf("%s; lost ids (first 5): %v", line, lostIDs[:min(5, len(lostIDs))])
	}
	if handledTwice > 0 {
		t.Errorf("%s; %d handlings beyond the first: the worker's idempotency failed", line, handledTwice)
	}
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(v); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
}

// daprMetadata is the part of daprd's /v1.0/metadata the tests read.
type daprMetadata struct {
	Subscriptions []struct {
		PubsubName      string `json:"pubsubname"`
		Topic           string `json:"topic"`
		DeadLetterTopic string `json:"deadLetterTopic"`
		Type            string `json:"type"`
		Rules           []struct {
			Match string `json:"match"`
			Path  string `json:"path"`
		} `json:"rules"`
	} `json:"subscriptions"`
	AppConnectionProperties struct {
		Port int `json:"port"`
	} `json:"appConnectionProperties"`
}

// getMetadata reads a sidecar's /v1.0/metadata, returning the body too for error messages.
func getMetadata(ctx context.Context, sidecarURL string) (daprMetadata, []byte, error) {
	var m daprMetadata
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, sidecarURL+"/v1.0/metadata", nil)
	if err != nil {
		return m, nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return m, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return m, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return m, raw, fmt.Errorf("metadata: %s", resp.Status)
	}
	return m, raw, json.Unmarshal(raw, &m)
}

// recorded reports whether the worker's ledger holds the handled-task record of taskID,
// read through a worker sidecar's state API (the key is scoped to the worker's app-id).
func recorded(ctx context.Context, workerSidecarURL, taskID string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, workerSidecarURL+"/v1.0/state/statestore/task-"+taskID, nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
