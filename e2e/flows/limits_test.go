package flows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskevents/taskevents/e2e/internal/suite"
	"github.com/taskevents/taskevents/tools/harness"
)

// Both apps' http.Server ReadHeaderTimeout (publisher/run.go, worker/run.go).
const readHeaderTimeout = 5 * time.Second

// closeSlack is how late past ReadHeaderTimeout a close may come on a loaded machine.
const closeSlack = 2 * time.Second

// idleConns is how many connections that never send a byte are held open to each app.
const idleConns = 1000

// rssGrowthLimit bounds how much each app's RSS may grow while it holds idleConns.
const rssGrowthLimit = 32 << 20

// TestLimits: abuse through the running system. Bodies over the limits are refused with
// the documented answer (the publisher's 413 problem, the worker's DROP); a client that
// dribbles its headers is cut off at ReadHeaderTimeout; a thousand idle connections to
// each app neither stop a normal request nor make the RSS grow without bound, and are
// closed by the servers too.
func TestLimits(t *testing.T) {
	sys := suite.StartSystem(t, "redis", harness.SystemOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pub, wrk := sys.Publisher, sys.Workers[0]

	oversizedPublisher(ctx, t, pub)
	oversizedWorker(ctx, t, wrk)

	// Slowloris clients and idle connections at the same time: both wait for the same
	// ReadHeaderTimeout, and each is the other's background load.
	servers := map[string]string{"publisher": hostPort(pub.URL), "worker": hostPort(wrk.URL)}
	for name, a := range map[string]*harness.App{"publisher ops": pub, "worker ops": wrk} {
		if a.OpsURL != "" && a.OpsURL != a.URL {
			servers[name] = hostPort(a.OpsURL)
		}
	}
	type closed struct {
		server string
		took   time.Duration
		err    error
	}
	slow := make(chan closed, len(servers))
	for name, addr := range servers {
		go func() {
			took, err := dribbleHeaders(addr, 250*time.Millisecond, readHeaderTimeout+10*time.Second)
			slow <- closed{name, took, err}
		}()
	}

	apps := []*harness.App{pub, wrk}
	rssBefore, fdsBefore := make([]int64, len(apps)), make([]int, len(apps))
	for i, a := range apps {
		rssBefore[i] = mustRSS(t, a)
		fdsBefore[i] = mustFDs(t, a)
	}
	idle := make([]*idleSet, len(apps))
	for i, a := range apps {
		var err error
		if idle[i], err = openIdleConns(hostPort(a.URL), idleConns); err != nil {
			t.Fatalf("%s: %v", a.Name, err)
		}
		defer idle[i].close()
	}
	// The servers have accepted them once each app holds that many more descriptors.
	for i, a := range apps {
		want := fdsBefore[i] + idleConns
		suite.WaitFor(t, fmt.Sprintf("%s to accept %d idle connections", a.Name, idleConns), 10*time.Second, 20*time.Millisecond,
			func() (bool, string) {
				n := mustFDs(t, a)
				return n >= want, fmt.Sprintf("%d open descriptors, want %d", n, want)
			})
	}

	// A normal request still works on each app, and the whole flow with it.
	c, r, err := suite.CreateTask(ctx, pub, "while a thousand connections idle")
	if err != nil || r.Status != http.StatusAccepted {
		t.Fatalf("POST /tasks with %d idle connections = %d %s (%v), want 202", idleConns, r.Status, r.Body, err)
	}
	suite.WaitHandled(t, sys.Workers, map[string]string{c.ID: c.Title}, 15*time.Second)
	r, err = suite.Post(ctx, wrk.URL+suite.Contract.Route, "application/cloudevents+json",
		deliveryEnvelope("limits-"+uuid.NewString(), uuid.NewString(), "direct delivery"), nil)
	if err != nil || r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"SUCCESS"`) {
		t.Errorf("worker /events/todo with %d idle connections = %d %s (%v), want SUCCESS", idleConns, r.Status, r.Body, err)
	}
	rssAfter := make([]int64, len(apps))
	for i, a := range apps {
		rssAfter[i] = mustRSS(t, a)
		if grew := rssAfter[i] - rssBefore[i]; grew > rssGrowthLimit {
			t.Errorf("%s RSS grew by %d MB with %d idle connections, want at most %d MB",
				a.Name, grew>>20, idleConns, rssGrowthLimit>>20)
		}
	}

	var slowest time.Duration
	for range servers {
		c := <-slow
		switch {
		case c.err != nil:
			t.Errorf("slowloris on the %s: %v", c.server, c.err)
		case c.took > readHeaderTimeout+closeSlack:
			t.Errorf("the %s closed a slowloris connection after %s, want within ReadHeaderTimeout %s (+%s)",
				c.server, c.took.Round(10*time.Millisecond), readHeaderTimeout, closeSlack)
		}
		t.Logf("slowloris: the %s closed the connection after %s", c.server, c.took.Round(10*time.Millisecond))
		slowest = max(slowest, c.took)
	}
	for i, a := range apps {
		open, took := idle[i].waitClosed(readHeaderTimeout + closeSlack)
		if open > 0 {
			t.Errorf("%s still held %d of %d idle connections %s after they were opened, want all closed by ReadHeaderTimeout",
				a.Name, open, idleConns, readHeaderTimeout+closeSlack)
		}
		t.Logf("%s closed its %d idle connections within %s of their opening", a.Name, idleConns, took.Round(10*time.Millisecond))
	}

	fmt.Printf("limits: oversized_publisher=413 oversized_worker=DROP slowloris_closed_s=%.1f idle_conns=%d "+
		"rss_publisher=%.1f->%.1fMB rss_worker=%.1f->%.1fMB\n",
		slowest.Seconds(), idleConns, mb(rssBefore[0]), mb(rssAfter[0]), mb(rssBefore[1]), mb(rssAfter[1]))
}

// oversizedPublisher: a task over 64 KiB is a 413 problem, announced by Content-Length or
// found while reading a chunked body.
func oversizedPublisher(ctx context.Context, t *testing.T, pub *harness.App) {
	t.Helper()
	body := `{"title":"` + strings.Repeat("a", 64<<10) + `"}`
	for _, chunked := range []bool{false, true} {
		var rd io.Reader = strings.NewReader(body)
		if chunked {
			rd = io.MultiReader(rd) // hides the length: Transfer-Encoding: chunked
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, pub.URL+"/tasks", rd)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := suite.Client.Do(req)
		if err != nil {
			t.Fatalf("POST /tasks with a %d-byte body (chunked %v): %v", len(body), chunked, err)
		}
		raw, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		var p struct{ Status int }
		if resp.StatusCode != http.StatusRequestEntityTooLarge ||
			resp.Header.Get("Content-Type") != "application/problem+json" ||
			json.Unmarshal(raw, &p) != nil || p.Status != http.StatusRequestEntityTooLarge {
			t.Errorf("POST /tasks with a %d-byte body (chunked %v) = %d %s %s, want a 413 problem+json",
				len(body), chunked, resp.StatusCode, resp.Header.Get("Content-Type"), raw)
		}
	}
}

// oversizedWorker: a delivery one byte over the worker's MAX_EVENT_BYTES (as it logged at
// start) is answered DROP, so daprd dead-letters it instead of redelivering it forever.
func oversizedWorker(ctx context.Context, t *testing.T, wrk *harness.App) {
	t.Helper()
	var start struct {
		MaxEventBytes int `json:"max_event_bytes"`
	}
	for _, l := range wrk.Lines() {
		if strings.Contains(l, `"max_event_bytes"`) && json.Unmarshal([]byte(l), &start) == nil {
			break
		}
	}
	if start.MaxEventBytes <= 0 {
		t.Fatalf("the worker did not log max_event_bytes at start:\n%s", wrk.Tail(20))
	}
	id := "oversized-" + uuid.NewString()
	env := deliveryEnvelope(id, uuid.NewString(), "")
	title := strings.Repeat("a", start.MaxEventBytes+1-len(env))
	env = deliveryEnvelope(id, uuid.NewString(), title)
	if len(env) != start.MaxEventBytes+1 {
		t.Fatalf("built a %d-byte envelope, want %d", len(env), start.MaxEventBytes+1)
	}
	r, err := suite.Post(ctx, wrk.URL+suite.Contract.Route, "application/cloudevents+json", env, nil)
	if err != nil || r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"DROP"`) {
		t.Errorf("worker /events/todo with %d bytes (MAX_EVENT_BYTES %d) = %d %s (%v), want 200 DROP",
			len(env), start.MaxEventBytes, r.Status, r.Body, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := wrk.WaitForLine(wctx, func(l string) bool {
		return strings.Contains(l, "EVENT REJECTED") && strings.Contains(l, "MAX_EVENT_BYTES")
	}); err != nil {
		t.Errorf("the worker did not log the oversized delivery as rejected: %v", err)
	}
}

// deliveryEnvelope is a CloudEvent as daprd delivers a task.created publish.
func deliveryEnvelope(id, taskID, title string) string {
	data, _ := json.Marshal(map[string]string{"event_type": suite.Contract.EventType, "task_id": taskID, "title": title})
	return fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":%q,"type":%q,`+
		`"topic":%q,"pubsubname":%q,"datacontenttype":"application/json","data":%s}`,
		id, suite.Contract.PublisherAppID, suite.Contract.EventType, suite.Contract.Topic, suite.Contract.PubSub, data)
}

// dribbleHeaders is a slowloris client: it sends a request line and then one header byte
// per interval, never finishing the headers. It returns how long after dialling the server
// closed the connection; an answer from the server instead of a close is an error, since
// the headers it would answer were never complete.
func dribbleHeaders(addr string, interval, giveUp time.Duration) (time.Duration, error) {
	start := time.Now()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST /tasks HTTP/1.1\r\nHost: "+addr+"\r\nX-Slow: "); err != nil {
		return 0, err
	}
	_ = conn.SetReadDeadline(start.Add(giveUp))
	type readResult struct {
		got []byte
		err error
	}
	done := make(chan readResult, 1)
	go func() {
		got, err := io.ReadAll(conn) // returns at the close (EOF or reset) or the deadline
		done <- readResult{got, err}
	}()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	written := 0
	for {
		select {
		case r := <-done:
			took := time.Since(start)
			var ne net.Error
			switch {
			case errors.As(r.err, &ne) && ne.Timeout():
				return took, fmt.Errorf("still open after %s (%d header bytes dribbled)", giveUp, written)
			case len(r.got) > 0:
				return took, fmt.Errorf("the server answered an unfinished request after %s: %q", took, r.got)
			}
			return took, nil
		case <-tick.C:
			// A write fails once the server has closed; the read above reports that.
			if _, err := conn.Write([]byte("a")); err == nil {
				written++
			}
		}
	}
}

// idleSet is a set of connections that never send a byte.
type idleSet struct {
	opened time.Time
	conns  []net.Conn
}

func openIdleConns(addr string, n int) (*idleSet, error) {
	s := &idleSet{opened: time.Now()}
	for range n {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("idle connection %d of %d to %s: %w", len(s.conns)+1, n, addr, err)
		}
		s.conns = append(s.conns, c)
	}
	return s, nil
}

// waitClosed waits until the server has closed every connection, at most within of their
// opening; it returns how many were still open then, and when the last one closed.
func (s *idleSet) waitClosed(within time.Duration) (open int, took time.Duration) {
	var (
		mu   sync.Mutex
		last time.Time
		wg   sync.WaitGroup
	)
	for _, c := range s.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetReadDeadline(s.opened.Add(within))
			_, err := c.Read(make([]byte, 1))
			mu.Lock()
			defer mu.Unlock()
			if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
				open++
				return
			}
			last = time.Now()
		}()
	}
	wg.Wait()
	return open, last.Sub(s.opened)
}

func (s *idleSet) close() {
	for _, c := range s.conns {
		_ = c.Close()
	}
}

func mustRSS(t *testing.T, a *harness.App) int64 {
	t.Helper()
	rss, err := a.RSS()
	if err != nil {
		t.Fatal(err)
	}
	return rss
}

// mustFDs counts the app's open file descriptors.
func mustFDs(t *testing.T, a *harness.App) int {
	t.Helper()
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", a.Pid()))
	if err != nil {
		t.Fatalf("%s: %v", a.Name, err)
	}
	return len(entries)
}

func hostPort(url string) string { return strings.TrimPrefix(url, "http://") }

func mb(b int64) float64 { return float64(b) / (1 << 20) }
