// Package harness starts the real system on loopback — a broker, daprd sidecars and the two
// apps — for the end-to-end tests and for `make run`, so both exercise the same topology
// built from the same YAML that goes to the cluster.
package harness

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Binaries are the programs the harness runs.
type Binaries struct {
	Daprd     string
	Publisher string
	Worker    string
	// Prometheus is the directory holding prometheus and promtool (tools/prometheus); only
	// the monitoring test needs it, so it may be empty.
	Prometheus string
	// Jaeger is the jaeger binary (tools/jaeger); only StartJaeger needs it (the tracing test,
	// make run JAEGER=1), so it may be empty.
	Jaeger string
}

// Harness owns every process it started and stops them, newest first, on Close.
type Harness struct {
	Root string // repository root: components/ and subscriptions/ are read from here
	Bins Binaries
	Dir  string    // scratch directory for broker data and generated resources
	Sink io.Writer // every process's output, one prefixed line at a time
	// Contract holds the app-ids, topic and routes, as the repository's files define them.
	Contract Contract

	sidecars sidecarsByAppID // the chart's <app>.dapr values, for every daprd's app channel

	mu       sync.Mutex
	procs    []*Process
	cleanups []func() error
	// tracingConfigs are the local copies of the tracing Configuration, by OTLP endpoint.
	tracingConfigs map[string]string
}

// New returns a harness working in dir. sink may be io.Discard.
func New(root, dir string, bins Binaries, sink io.Writer) (*Harness, error) {
	for name, path := range map[string]string{"daprd": bins.Daprd, "publisher": bins.Publisher, "worker": bins.Worker} {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("%s binary: %w", name, err)
		}
	}
	contract, err := LoadContract(root)
	if err != nil {
		return nil, err
	}
	sidecars, err := chartSidecars(root)
	if err != nil {
		return nil, err
	}
	return &Harness{Root: root, Bins: bins, Dir: dir, Sink: &lockedWriter{w: sink}, Contract: contract, sidecars: sidecars}, nil
}

func (h *Harness) start(name string, env []string, bin string, args ...string) (*Process, error) {
	return h.startIn(name, h.Dir, nil, env, bin, args...)
}

// startIn starts a process in dir, as the user cred names when it is not nil.
func (h *Harness) startIn(name, dir string, cred *syscall.Credential, env []string, bin string, args ...string) (*Process, error) {
	p, err := startProcess(name, h.Sink, env, dir, cred, bin, args...)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	h.procs = append(h.procs, p)
	h.mu.Unlock()
	return p, nil
}

// onClose registers fn to run after every process is stopped (e.g. removing a directory
// that is not under Dir).
func (h *Harness) onClose(fn func() error) {
	h.mu.Lock()
	h.cleanups = append(h.cleanups, fn)
	h.mu.Unlock()
}

// Close stops every process, newest first, and reports the ones that misbehaved.
func (h *Harness) Close() error {
	h.mu.Lock()
	procs, cleanups := h.procs, h.cleanups
	h.procs, h.cleanups = nil, nil
	h.mu.Unlock()
	var errs []error
	for i := len(procs) - 1; i >= 0; i-- {
		if err := procs[i].Stop(20 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	for i := len(cleanups) - 1; i >= 0; i-- {
		if err := cleanups[i](); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Processes returns every process started so far.
func (h *Harness) Processes() []*Process {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*Process(nil), h.procs...)
}

// FindRoot walks up from dir to the directory holding go.work.
func FindRoot(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.work above %s", dir)
		}
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
