package harness

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// SidecarOptions describe one daprd.
type SidecarOptions struct {
	AppID     string
	AppPort   int      // 0: no app channel (a publisher-only sidecar)
	Resources []string // --resources-path directories
	Env       []string // e.g. DAPR_API_TOKEN=…, APP_API_TOKEN=…
	// HTTPPort, GRPCPort and MetricsPort: 0 picks free ports.
	HTTPPort, GRPCPort, MetricsPort int
}

// Sidecar is a running daprd.
type Sidecar struct {
	*Process
	Opts    SidecarOptions
	HTTPURL string
	h       *Harness
	name    string
}

// StartSidecar runs daprd self-hosted on loopback without placement or scheduler (pub/sub
// needs neither) and waits until its HTTP API reports healthy.
func (h *Harness) StartSidecar(ctx context.Context, name string, o SidecarOptions) (*Sidecar, error) {
	for _, port := range []*int{&o.HTTPPort, &o.GRPCPort, &o.MetricsPort} {
		if *port == 0 {
			p, err := FreePort()
			if err != nil {
				return nil, err
			}
			*port = p
		}
	}
	s := &Sidecar{Opts: o, HTTPURL: fmt.Sprintf("http://127.0.0.1:%d", o.HTTPPort), h: h, name: name}
	return s, s.launch(ctx)
}

func (s *Sidecar) args() []string {
	o := s.Opts
	args := []string{
		"--app-id", o.AppID, "--mode", "standalone", "--log-level", "info",
		"--dapr-listen-addresses", "127.0.0.1",
		"--dapr-http-port", strconv.Itoa(o.HTTPPort),
		"--dapr-grpc-port", strconv.Itoa(o.GRPCPort),
		"--dapr-internal-grpc-listen-address", "127.0.0.1",
		"--metrics-port", strconv.Itoa(o.MetricsPort), "--metrics-listen-address", "127.0.0.1",
		// Above the worker's HANDLER_TIMEOUT (4s), as in the chart: deliveries in flight
		// (or waiting on another delivery's claim) finish before daprd gives up.
		"--dapr-graceful-shutdown-seconds", "10",
	}
	if o.AppPort != 0 {
		args = append(args,
			"--app-port", strconv.Itoa(o.AppPort), "--app-protocol", "http",
			// The chart sets the same: routing comes only from subscriptions/, so daprd
			// need not ask the app for programmatic subscriptions.
			"--disable-init-endpoints", "subscribe",
			"--enable-app-health-check", "--app-health-check-path", "/healthz",
			"--app-health-probe-interval", "1")
	}
	for _, r := range o.Resources {
		args = append(args, "--resources-path", r)
	}
	return args
}

func (s *Sidecar) launch(ctx context.Context) error {
	p, err := s.h.start(s.name, environ(s.Opts.Env...), s.h.Bins.Daprd, s.args()...)
	if err != nil {
		return err
	}
	s.Process = p
	// /v1.0/healthz includes the app channel, so for the worker it also means the app is
	// reachable; the publisher's sidecar has no app and is healthy once components load.
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := WaitHTTP(wctx, s.HTTPURL+"/v1.0/healthz", 204); err != nil {
		return fmt.Errorf("%s: %w\n%s", s.name, err, p.Tail(30))
	}
	return nil
}

// Restart stops daprd and starts it again on the same ports and resources.
func (s *Sidecar) Restart(ctx context.Context) error {
	if err := s.Stop(20 * time.Second); err != nil {
		return err
	}
	return s.launch(ctx)
}
