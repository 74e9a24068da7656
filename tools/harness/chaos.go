package harness

import (
	"context"
	"fmt"
	"syscall"
)

// The faults the chaos tests inject: a crash (SIGKILL, as an OOM kill or a node failure
// would), a graceful stop (SIGTERM, as a rollout would), and a broker restarted on the
// same port and data directory.

// Crash SIGKILLs the app and starts it again on the same port with the same environment,
// as a container restarted after a crash. It returns the dead process, whose output stays
// readable (and is among Harness.Processes).
func (a *App) Crash(ctx context.Context) (*Process, error) {
	dead := a.Process
	dead.Kill()
	return dead, a.launch(ctx)
}

// Relaunch starts the app again after its process ended (Terminate, Kill), on the same
// port with the same environment.
func (a *App) Relaunch(ctx context.Context) error {
	if exited, _ := a.Exited(); !exited {
		return fmt.Errorf("%s: relaunch while pid %d still runs", a.name, a.Pid())
	}
	return a.launch(ctx)
}

// Crash SIGKILLs daprd and starts it again on the same ports and resources.
func (s *Sidecar) Crash(ctx context.Context) (*Process, error) {
	dead := s.Process
	dead.Kill()
	return dead, s.launch(ctx)
}

// Relaunch starts the broker again on the same port and data directory after it was
// stopped (Stop). Only brokers started with a relaunch (StartRedisWith) have one.
func (b *Broker) Relaunch(ctx context.Context) error {
	if b.relaunch == nil {
		return fmt.Errorf("broker %s cannot be relaunched", b.Name)
	}
	if exited, _ := b.Exited(); !exited {
		return fmt.Errorf("broker %s: relaunch while pid %d still runs", b.Name, b.Pid())
	}
	p, err := b.relaunch(ctx)
	if p != nil {
		b.Process = p
	}
	return err
}

// Terminate sends SIGTERM to the process group and returns at once; Done tells when the
// process has exited, Exited how.
func (p *Process) Terminate() {
	if ok, _ := p.Exited(); ok {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
}

// Done is closed once the process has exited and its output has been read.
func (p *Process) Done() <-chan struct{} { return p.done }
