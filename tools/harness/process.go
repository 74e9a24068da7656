package harness

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is one child process (broker, sidecar or app) whose output is both streamed
// with a name prefix and kept in memory, so tests can wait for and assert on log lines.
type Process struct {
	Name string
	cmd  *exec.Cmd

	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced whenever a line arrives or the process exits
	exited  bool
	waitErr error
	done    chan struct{}
}

// StartProcess starts bin in its own process group (so stopping it also stops anything it
// spawned) and tees every output line to sink as "[name] line".
func StartProcess(name string, sink io.Writer, env []string, dir string, bin string, args ...string) (*Process, error) {
	return startProcess(name, sink, env, dir, nil, bin, args...)
}

// startProcess is StartProcess, optionally running as another user (cred), e.g. a broker
// that must not run as root.
func startProcess(name string, sink io.Writer, env []string, dir string, cred *syscall.Credential, bin string, args ...string) (*Process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = env
	// Pdeathsig makes the kernel kill the child if the harness dies without cleaning up,
	// so a crashed test run leaves no daprd or redis-server behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: cred}
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = pw
	p := &Process{Name: name, cmd: cmd, changed: make(chan struct{}), done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
		for sc.Scan() {
			line := sc.Text()
			if sink != nil {
				fmt.Fprintf(sink, "[%s] %s\n", name, line)
			}
			p.mu.Lock()
			p.lines = append(p.lines, line)
			close(p.changed)
			p.changed = make(chan struct{})
			p.mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	go func() {
		err := cmd.Wait()
		_ = pw.Close()
		<-scanned
		p.mu.Lock()
		p.exited, p.waitErr = true, err
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// Pid returns the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Lines returns a copy of every output line so far.
func (p *Process) Lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// Exited reports whether the process has ended, and how.
func (p *Process) Exited() (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exited, p.waitErr
}

// WaitForLine blocks until a line satisfies match, the process exits, or ctx ends.
func (p *Process) WaitForLine(ctx context.Context, match func(string) bool) (string, error) {
	seen := 0
	for {
		p.mu.Lock()
		lines, changed, exited := p.lines[seen:], p.changed, p.exited
		seen = len(p.lines)
		p.mu.Unlock()
		for _, l := range lines {
			if match(l) {
				return l, nil
			}
		}
		if exited {
			return "", fmt.Errorf("%s exited before the expected log line:\n%s", p.Name, p.Tail(20))
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%s: waiting for log line: %w\n%s", p.Name, ctx.Err(), p.Tail(20))
		case <-changed:
		}
	}
}

// Tail returns the last n output lines, for error messages.
func (p *Process) Tail(n int) string {
	lines := p.Lines()
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  | " + strings.Join(lines, "\n  | ")
}

// Stop sends SIGTERM to the process group, waits up to grace, then kills it. It is safe to
// call more than once.
func (p *Process) Stop(grace time.Duration) error {
	if ok, _ := p.Exited(); ok {
		return nil
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("%s did not stop within %s of SIGTERM and was killed", p.Name, grace)
	}
	_, err := p.Exited()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		ws := exitErr.Sys().(syscall.WaitStatus)
		// Ended by our SIGTERM: that is the expected way out. The JVM handles SIGTERM, runs
		// its shutdown hooks and exits with 128+15 instead.
		if ws.Signaled() || ws.ExitStatus() == 128+int(syscall.SIGTERM) {
			return nil
		}
	}
	return err
}

// Kill ends the process group with SIGKILL, as a crash or an OOM kill would, and waits
// until it is gone.
func (p *Process) Kill() {
	if ok, _ := p.Exited(); ok {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// environ returns the harness's environment plus extra, with extra winning.
func environ(extra ...string) []string {
	env := os.Environ()
	return append(env, extra...)
}
