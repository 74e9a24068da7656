package flows

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/taskevents/taskevents/e2e/internal/suite"
	"github.com/taskevents/taskevents/tools/harness"
)

// TestPublisherMetrics: through a real daprd on Redis, a POST /tasks shows up on the
// publisher's /metrics, which its ops port (OPS_PORT) serves and its API port does not.
func TestPublisherMetrics(t *testing.T) {
	if !slices.Contains(suite.Brokers(), "redis") {
		t.Skip("runs on redis, which is not in BROKERS")
	}
	sys := suite.StartSystem(t, "redis", harness.SystemOptions{})
	pub := sys.Publisher
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if pub.OpsURL == pub.URL {
		t.Fatalf("the publisher's OpsURL is its API URL %s; want its OPS_PORT", pub.URL)
	}
	if code, body := fetchText(ctx, t, pub.URL+"/metrics"); code != http.StatusNotFound || strings.Contains(body, "taskevents_") {
		t.Errorf("GET /metrics on the API port = %d %.200s, want 404 without metrics", code, body)
	}

	c, r, err := suite.CreateTask(ctx, pub, "count me")
	if err != nil || r.Status != http.StatusAccepted {
		t.Fatalf("POST /tasks = %d %s (%v), want 202", r.Status, r.Body, err)
	}
	const (
		published = `taskevents_publisher_events_published_total`
		accepted  = `taskevents_publisher_requests_total{code="202",route="/tasks"}`
		attempts  = `taskevents_publisher_publish_attempts_total{mode="single",result="accepted"}`
		down      = `taskevents_publisher_sidecar_unavailable_total`
	)
	var last map[string]float64
	// The request is counted once its handler has returned, which may be just after the
	// client has read the 202.
	err = harness.Poll(ctx, 10*time.Second, 100*time.Millisecond, func(ctx context.Context) error {
		code, body := fetchText(ctx, t, pub.OpsURL+"/metrics")
		if code != http.StatusOK {
			return fmt.Errorf("GET /metrics on the ops port = %d", code)
		}
		last = exposedSeries(t, body)
		if last[published] < 1 || last[accepted] < 1 {
			return fmt.Errorf("%s = %v, %s = %v", published, last[published], accepted, last[accepted])
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the publisher's metrics never counted task %s: %v\n%s", c.ID, err, pub.Tail(20))
	}
	if last[attempts] < 1 || last[down] != 0 {
		t.Errorf("%s = %v, want >= 1; %s = %v, want 0", attempts, last[attempts], down, last[down])
	}
	fmt.Printf("e2e redis publisher metrics: requests_202=%v events_published=%v single_accepted=%v\n",
		last[accepted], last[published], last[attempts])
}

func fetchText(ctx context.Context, t *testing.T, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := suite.Client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// exposedSeries reads Prometheus' text format into series ("name{labels}", as written)
// and their values.
func exposedSeries(t *testing.T, body string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader([]byte(body)))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("exposition line %q has no value", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("exposition line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}
