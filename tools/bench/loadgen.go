package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caarlos0/env/v11"
)

// LoadgenConfig is the open-loop generator's settings, passed by the bench through the
// environment of its own executable run as a second process (BENCH_ROLE=loadgen).
type LoadgenConfig struct {
	URL      string        `env:"LOADGEN_URL,notEmpty"`
	Rate     int           `env:"LOADGEN_RATE,notEmpty"`
	Duration time.Duration `env:"LOADGEN_DURATION,notEmpty"`
	Out      string        `env:"LOADGEN_OUT,notEmpty"` // one "<id> <unix ns> <status>" line per request
	Tag      string        `env:"LOADGEN_TAG"`
}

// Loadgen POSTs tasks at a fixed rate, whatever the answers' latency (open loop: a slow
// answer does not delay the next request), and records for each the time it was due and
// the id of the 202. A request's publish time is when it was due, not when it went out,
// so a generator that falls behind shows as latency instead of hiding it.
func Loadgen(ctx context.Context, environ []string, stdout io.Writer) error {
	cfg, err := env.ParseAsWithOptions[LoadgenConfig](env.Options{Environment: env.ToMap(environ)})
	if err != nil {
		return fmt.Errorf("loadgen: %w", err)
	}
	if cfg.Rate < 1 {
		return fmt.Errorf("loadgen: LOADGEN_RATE must be at least 1, got %d", cfg.Rate)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: time.Minute}}
	n := int(cfg.Duration.Seconds() * float64(cfg.Rate))
	type sent struct {
		id     string
		due    time.Time
		status int
	}
	results := make([]sent, n)
	interval := time.Second / time.Duration(cfg.Rate)
	start := time.Now().Add(50 * time.Millisecond)
	var wg sync.WaitGroup
	for i := range n {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(d):
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf(`{"title":"e2e %s-%d"}`, cfg.Tag, i)
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, cfg.URL, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				results[i] = sent{due: due}
				return
			}
			defer resp.Body.Close()
			var created struct {
				ID string `json:"id"`
			}
			_ = json.NewDecoder(io.LimitReader(resp.Body, 4<<10)).Decode(&created)
			results[i] = sent{id: created.ID, due: due, status: resp.StatusCode}
		}()
	}
	wg.Wait()
	f, err := os.Create(cfg.Out)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	ok := 0
	for _, r := range results {
		if r.status == http.StatusAccepted {
			ok++
		}
		id := r.id
		if id == "" {
			id = "-"
		}
		fmt.Fprintf(w, "%s %d %d\n", id, r.due.UnixNano(), r.status)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "loadgen: %d requests at %d/s, %d answered 202\n", n, cfg.Rate, ok)
	return err
}

// LoadgenRecord is one line of the generator's output.
type LoadgenRecord struct {
	ID     string
	Due    time.Time
	Status int
}

// ParseLoadgen reads the generator's output file.
func ParseLoadgen(r io.Reader) ([]LoadgenRecord, error) {
	var out []LoadgenRecord
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 {
			return nil, fmt.Errorf("loadgen output: bad line %q", sc.Text())
		}
		ns, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("loadgen output: %q: %w", sc.Text(), err)
		}
		st, err := strconv.Atoi(f[2])
		if err != nil {
			return nil, fmt.Errorf("loadgen output: %q: %w", sc.Text(), err)
		}
		out = append(out, LoadgenRecord{ID: f[0], Due: time.Unix(0, ns), Status: st})
	}
	return out, sc.Err()
}
