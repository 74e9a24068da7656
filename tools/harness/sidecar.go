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
	AppPort   int      // the app's port: daprd waits for it, as in the pod
	Resources []string // --resources-path directories
	Env       []string // e.g. DAPR_API_TOKEN=…, APP_API_TOKEN=…
	// Config is daprd's --config, a copy of components/tracing.yaml (TracingConfig); empty:
	// the copy that exports nothing.
	Config string
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

func (s *Sidecar) args() ([]string, error) {
	o := s.Opts
	args := []string{
		"--app-id", o.AppID, "--mode", "standalone", "--log-level", "info",
		"--dapr-listen-addresses", "127.0.0.1",
		"--dapr-http-port", strconv.Itoa(o.HTTPPort),
		"--dapr-grpc-port", strconv.Itoa(o.GRPCPort),
		"--dapr-internal-grpc-listen-address", "127.0.0.1",
		"--metrics-port", strconv.Itoa(o.MetricsPort), "--metrics-listen-address", "127.0.0.1",
	}
	// The app channel, from the chart's values: the same protocol, health check, init
	// endpoints and graceful shutdown as the injector gives the pod's daprd; and the tracing
	// Configuration, as dapr.io/config gives it with tracing on (sampling 1 locally, so
	// every event carries a real traceparent).
	config := o.Config
	if config == "" {
		var err error
		if config, err = s.h.TracingConfig(""); err != nil {
			return nil, err
		}
	}
	flags, err := s.h.sidecars.flags(o.AppID, o.AppPort, config)
	if err != nil {
		return nil, err
	}
	args = append(args, flags...)
	for _, r := range o.Resources {
		args = append(args, "--resources-path", r)
	}
	return args, nil
}

func (s *Sidecar) launch(ctx context.Context) error {
	args, err := s.args()
	if err != nil {
		return err
	}
	p, err := s.h.start(s.name, environ(s.Opts.Env...), s.h.Bins.Daprd, args...)
	if err != nil {
		return err
	}
	s.Process = p
	// /v1.0/healthz includes the app channel, so it also means the app's port is open:
	// start the app first.
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
