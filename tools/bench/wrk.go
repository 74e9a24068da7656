package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// WrkResult is what one wrk run printed.
type WrkResult struct {
	Requests     int64                    `json:"requests"`
	Duration     time.Duration            `json:"duration"`
	Non2xx       int64                    `json:"non2xx"`
	SocketErrors int64                    `json:"socket_errors"`
	Latency      map[string]time.Duration `json:"latency"` // "50%", "75%", "90%", "99%"
	Raw          string                   `json:"-"`
}

// OKPerSecond is the rate of 2xx answers: wrk's Requests/sec counts failures too.
func (r WrkResult) OKPerSecond() float64 {
	if r.Duration <= 0 {
		return 0
	}
	return float64(r.Requests-r.Non2xx-r.SocketErrors) / r.Duration.Seconds()
}

// OK is the number of 2xx answers.
func (r WrkResult) OK() int64 { return r.Requests - r.Non2xx - r.SocketErrors }

// ParseWrk reads wrk's report (run with --latency).
func ParseWrk(out string) (WrkResult, error) {
	r := WrkResult{Latency: map[string]time.Duration{}, Raw: out}
	inDist := false
	seenTotal := false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(line)
		switch {
		case line == "Latency Distribution":
			inDist = true
		case inDist && len(f) == 2 && strings.HasSuffix(f[0], "%"):
			d, err := parseWrkDuration(f[1])
			if err != nil {
				return r, fmt.Errorf("wrk latency %q: %w", line, err)
			}
			r.Latency[f[0]] = d
		case len(f) >= 4 && f[1] == "requests" && f[2] == "in":
			inDist = false
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return r, fmt.Errorf("wrk total %q: %w", line, err)
			}
			d, err := parseWrkDuration(strings.TrimSuffix(f[3], ","))
			if err != nil {
				return r, fmt.Errorf("wrk total %q: %w", line, err)
			}
			r.Requests, r.Duration, seenTotal = n, d, true
		case strings.HasPrefix(line, "Non-2xx or 3xx responses:"):
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimPrefix(line, "Non-2xx or 3xx responses:")), 10, 64)
			if err != nil {
				return r, fmt.Errorf("wrk %q: %w", line, err)
			}
			r.Non2xx = n
		case strings.HasPrefix(line, "Socket errors:"):
			// "Socket errors: connect 0, read 0, write 0, timeout 0"
			for _, part := range strings.Split(strings.TrimPrefix(line, "Socket errors:"), ",") {
				kv := strings.Fields(part)
				if len(kv) != 2 {
					return r, fmt.Errorf("wrk %q: bad part %q", line, part)
				}
				n, err := strconv.ParseInt(kv[1], 10, 64)
				if err != nil {
					return r, fmt.Errorf("wrk %q: %w", line, err)
				}
				r.SocketErrors += n
			}
		default:
			if len(f) > 0 && !strings.HasSuffix(f[0], "%") {
				inDist = false
			}
		}
	}
	if !seenTotal {
		return r, fmt.Errorf("wrk printed no \"N requests in T\" line:\n%s", out)
	}
	return r, nil
}

// parseWrkDuration reads wrk's units: us, ms, s, m, h (e.g. "812.00us", "1.02s", "2.00m").
func parseWrkDuration(s string) (time.Duration, error) {
	units := []struct {
		suffix string
		unit   time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"m", time.Minute}, {"h", time.Hour}, {"s", time.Second}}
	for _, u := range units {
		num, ok := strings.CutSuffix(s, u.suffix)
		if !ok {
			continue
		}
		// "us" and "ms" end in "s", so the two-letter units are tried first.
		v, err := strconv.ParseFloat(num, 64)
		if err != nil {
			return 0, err
		}
		return time.Duration(v * float64(u.unit)), nil
	}
	return 0, fmt.Errorf("unknown unit in %q", s)
}

// wrkRun is one wrk invocation.
type wrkRun struct {
	URL         string
	Connections int
	Duration    time.Duration
	Script      string // path of the Lua script
}

// runWrk runs wrk with one thread: every thread it takes is CPU taken from the system
// under test on a small machine.
func runWrk(ctx context.Context, bin string, w wrkRun) (WrkResult, error) {
	secs := max(1, int(w.Duration.Round(time.Second)/time.Second))
	// The timeout covers the slowest anchor's (the Python publisher's) queueing at 256
	// connections, so slow answers count as slow, not as errors.
	args := []string{"-t1", "-c" + strconv.Itoa(w.Connections), "-d" + strconv.Itoa(secs) + "s",
		"--timeout", "10s", "--latency", "-s", w.Script, w.URL}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(secs)*time.Second+30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		return WrkResult{}, fmt.Errorf("wrk %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return ParseWrk(string(out))
}

// Lua scripts for wrk. Each request carries a unique title, or for a direct publish a
// unique CloudEvent id, so dedupe-minded consumers see distinct events.
const (
	luaTasks = `wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, '{"title":"bench task %s-' .. n .. '"}')
end
`
	// The same query and body as the publisher's publish: cloudevent.id, cloudevent.type,
	// partitionKey, and the task.created payload with a UUID-shaped id.
	luaDirect = `wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  local id = string.format("%s-0000-4000-8000-%%012d", n)
  local path = "%s?metadata.cloudevent.id=" .. id .. "&metadata.cloudevent.type=task.created&metadata.partitionKey=" .. id
  return wrk.format(nil, path, nil, '{"event_type":"task.created","task_id":"' .. id .. '","title":"bench task"}')
end
`
)

// writeScripts writes the two Lua scripts for run tag (8 hex digits, unique per run, so
// ids never repeat across runs) into dir.
func writeScripts(dir, tag, publishPath string) (tasks, direct string, err error) {
	tasks = filepath.Join(dir, "tasks-"+tag+".lua")
	direct = filepath.Join(dir, "direct-"+tag+".lua")
	if err := os.WriteFile(tasks, []byte(fmt.Sprintf(luaTasks, tag)), 0o600); err != nil {
		return "", "", err
	}
	return tasks, direct, os.WriteFile(direct, []byte(fmt.Sprintf(luaDirect, tag, publishPath)), 0o600)
}
