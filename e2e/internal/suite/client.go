package suite

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

// Client is the one HTTP client the tests share: a timeout on every request, and enough
// idle connections per host for the concurrent publishers.
var Client = &http.Client{
	Timeout:   15 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 64},
}

// Created is the publisher's answer to POST /tasks.
type Created struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	Event string `json:"event"`
}

// Reply is an HTTP answer, read whole.
type Reply struct {
	Status int
	Header http.Header
	Body   []byte
}

// Post sends body to url and reads the whole answer.
func Post(ctx context.Context, url, contentType, body string, header map[string]string) (Reply, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return Reply{}, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := Client.Do(req)
	if err != nil {
		return Reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return Reply{resp.StatusCode, resp.Header, b}, err
}

// CreateTask is the README's curl: POST /tasks {"title": …}.
func CreateTask(ctx context.Context, publisher *harness.App, title string) (Created, Reply, error) {
	body, _ := json.Marshal(map[string]string{"title": title})
	r, err := Post(ctx, publisher.URL+"/tasks", "application/json", string(body), nil)
	if err != nil {
		return Created{}, r, err
	}
	var c Created
	if r.Status == http.StatusAccepted {
		err = json.Unmarshal(r.Body, &c)
	}
	return c, r, err
}

// PublishMany creates n tasks with conc concurrent clients and returns the accepted ones.
func PublishMany(t *testing.T, publisher *harness.App, n, conc int) map[string]string {
	t.Helper()
	accepted, failures := PublishAll(publisher, n, conc)
	if len(failures) > 0 {
		t.Fatalf("%d of %d publishes failed, first: %s", len(failures), n, failures[0])
	}
	return accepted
}

// PublishAll is PublishMany for use outside the test goroutine: it reports failures
// instead of failing the test.
func PublishAll(publisher *harness.App, n, conc int) (map[string]string, []string) {
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
				c, r, err := CreateTask(ctx, publisher, title)
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

// WaitHandled waits until every id in want was handled by some worker, or the deadline.
func WaitHandled(t *testing.T, workers []*harness.App, want map[string]string, within time.Duration) harness.Tally {
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

// Summarize checks that each published task was handled exactly once and prints the
// scenario's one-line summary.
func Summarize(t *testing.T, broker, scenario string, published map[string]string, tally harness.Tally, extra string) {
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

// MustJSON decodes b into v, failing the test when it cannot.
func MustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(v); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
}

// DaprMetadata is the part of daprd's /v1.0/metadata the tests read.
type DaprMetadata struct {
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

// GetMetadata reads a sidecar's /v1.0/metadata, returning the body too for error messages.
func GetMetadata(ctx context.Context, sidecarURL string) (DaprMetadata, []byte, error) {
	var m DaprMetadata
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, sidecarURL+"/v1.0/metadata", nil)
	if err != nil {
		return m, nil, err
	}
	resp, err := Client.Do(req)
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

// Recorded reports whether the worker's ledger holds the handled-task record of taskID,
// read through a worker sidecar's state API (the key is scoped to the worker's app-id).
func Recorded(ctx context.Context, workerSidecarURL, taskID string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, workerSidecarURL+"/v1.0/state/statestore/task-"+taskID, nil)
	if err != nil {
		return false
	}
	resp, err := Client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// HasRulePath reports whether the sidecar holds a subscription rule on topic to path.
func (m DaprMetadata) HasRulePath(topic, path string) bool {
	for _, s := range m.Subscriptions {
		for _, r := range s.Rules {
			if s.Topic == topic && r.Path == path {
				return true
			}
		}
	}
	return false
}
