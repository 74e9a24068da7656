package bench

import (
	"bufio"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// tailLines is how many output lines a process keeps for error messages. The harness's
// Process keeps every line, which a bench cannot afford: the publisher logs one line per
// event, millions over a run.
const tailLines = 12

// proc is one child process whose output lines go to a callback and a short tail.
type proc struct {
	name string
	cmd  *exec.Cmd

	mu     sync.Mutex
	tail   []string
	exited bool
	err    error
	done   chan struct{}
}

// startProc starts bin in its own process group (stopping it stops what it spawned:
// uvicorn's workers) with Pdeathsig, so a crashed bench leaves nothing running. onLine,
// if not nil, gets every output line with the time it arrived.
func startProc(name, dir string, env []string, onLine func(at time.Time, line string), bin string, args ...string) (*proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			line := sc.Text()
			if onLine != nil {
				onLine(time.Now(), line)
			}
			p.mu.Lock()
			if len(p.tail) == tailLines {
				p.tail = p.tail[1:]
			}
			if len(line) > 400 {
				line = line[:400] + "…"
			}
			p.tail = append(p.tail, line)
			p.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	go func() {
		err := cmd.Wait()
		_ = pw.Close()
		<-scanned
		p.mu.Lock()
		p.exited, p.err = true, err
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// alive reports whether the process still runs; the error says how it ended.
func (p *proc) alive() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exited {
		return fmt.Errorf("%s exited (%w):\n%s", p.name, p.err, p.tailLocked())
	}
	return nil
}

// Tail is the last output lines, for error messages.
func (p *proc) Tail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tailLocked()
}

func (p *proc) tailLocked() string {
	return "  | " + strings.Join(p.tail, "\n  | ")
}

// stop sends SIGTERM to the process group, waits up to grace, then kills it.
func (p *proc) stop(grace time.Duration) error {
	p.mu.Lock()
	exited := p.exited
	p.mu.Unlock()
	if exited {
		return nil
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("%s did not stop within %s of SIGTERM and was killed", p.name, grace)
	}
	// How it exited does not matter here: uvicorn and daprd answer SIGTERM with
	// assorted exit codes, and a bench reads its figures, not its exit statuses.
	return nil
}
