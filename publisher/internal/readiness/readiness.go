// Package readiness tracks whether the publisher should receive traffic: the
// sidecar must be able to publish, and the process must not be draining.
//
// The sidecar is polled in the background rather than per probe, so a burst
// of probes (kubelet, load balancers, humans) never turns into a burst of
// sidecar calls and /readyz answers instantly.
package readiness

import (
	"context"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Probe holds the current readiness. The zero value is not usable; use New.
type Probe struct {
	log zerolog.Logger

	mu       sync.RWMutex
	draining bool
	// reason is why the sidecar is not ready; "" after a successful check.
	reason string
}

const waiting = "waiting for the first check of the Dapr sidecar"

// New returns a probe that is not ready until the first successful check.
func New(log zerolog.Logger) *Probe { return &Probe{log: log, reason: waiting} }

// Status reports readiness and, when not ready, why.
func (p *Probe) Status() (ready bool, reason string) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	switch {
	case p.draining:
		return false, "draining"
	case p.reason == "":
		return true, "ready"
	}
	return false, p.reason
}

// Drain makes the probe report not ready from now on, so load balancers stop
// sending new requests before the server shuts down.
func (p *Probe) Drain() {
	p.mu.Lock()
	p.draining = true
	p.mu.Unlock()
}

// Run checks now and then every interval until ctx is done. Each check gets
// at most one interval. onFirstReady (may be nil) runs once, after the first
// successful check, on this goroutine.
func (p *Probe) Run(ctx context.Context, interval time.Duration, check func(context.Context) error, onFirstReady func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	firstDone := false
	for {
		cctx, cancel := context.WithTimeout(ctx, interval)
		err := check(cctx)
		cancel()
		if ctx.Err() != nil {
			return // a check cut short by shutdown says nothing about the sidecar
		}
		p.set(err)
		if err == nil && !firstDone {
			firstDone = true
			if onFirstReady != nil {
				onFirstReady(ctx)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (p *Probe) set(err error) {
	p.mu.Lock()
	was := p.reason
	p.reason = ""
	if err != nil {
		p.reason = "sidecar not ready: " + err.Error()
	}
	p.mu.Unlock()

	switch {
	case err == nil && was != "":
		p.log.Info().Msg("dapr sidecar ready; accepting traffic")
	// One warning when the sidecar goes down, not one every interval.
	case err != nil && (was == "" || was == waiting):
		p.log.Warn().Err(err).Msg("dapr sidecar not ready; readiness is 503")
	case err != nil:
		p.log.Debug().Err(err).Msg("dapr sidecar still not ready")
	}
}
