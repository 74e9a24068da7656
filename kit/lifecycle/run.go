package lifecycle

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/taskevents/taskevents/kit/logging"
	"github.com/taskevents/taskevents/kit/pprofserver"
)

// Main is an app's main: run gets a context that SIGINT or SIGTERM
// cancels; its error goes to stderr after the app's name, with exit code 1.
func Main(name string, run func(ctx context.Context, environ []string, stdout io.Writer) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Environ(), os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

// App is what Run serves: the app's server on APP_PORT, the probes and
// /metrics on OPS_PORT, profiles on PPROF_ADDR, and how they drain.
type App struct {
	Drain
	Host, OpsHost string // LISTEN_HOST, OPS_LISTEN_HOST
	Port, OpsPort int    // APP_PORT, OPS_PORT
	PprofAddr     string
	// Server serves APP_PORT; Run sets its ErrorLog.
	Server *http.Server
	Ops    http.Handler
	// Fields, if set, adds to the "listening" line.
	Fields func(*zerolog.Event)
}

// Run listens on both ports, starts pprof, logs "listening" with both
// addresses, then serves and drains as Serve does, the app's server first.
func Run(ctx context.Context, a App) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort(a.Host, strconv.Itoa(a.Port)))
	if err != nil {
		return fmt.Errorf("listen on APP_PORT %d: %w", a.Port, err)
	}
	opsLn, err := lc.Listen(ctx, "tcp", net.JoinHostPort(a.OpsHost, strconv.Itoa(a.OpsPort)))
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("listen on OPS_PORT %d: %w", a.OpsPort, err)
	}
	stopPprof, err := pprofserver.Start(ctx, a.PprofAddr, a.Timeout, a.Logger)
	if err != nil {
		_ = ln.Close()
		_ = opsLn.Close()
		return err
	}
	defer stopPprof()
	a.Server.ErrorLog = logging.ErrorLog(a.Logger, "http")
	// Prometheus and the kubelet: small GETs, answered from memory.
	ops := &http.Server{Handler: a.Ops, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second,
		WriteTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 8 << 10,
		ErrorLog: logging.ErrorLog(a.Logger, "ops")}
	line := a.Logger.Info().Str("addr", ln.Addr().String()).Str("ops_addr", opsLn.Addr().String())
	if a.Fields != nil {
		line = line.Func(a.Fields)
	}
	line.Msg("listening")
	return Serve(ctx, a.Drain, Server{HTTP: a.Server, Listener: ln}, Server{HTTP: ops, Listener: opsLn})
}

// Flush runs a tracer's Shutdown within timeout (SHUTDOWN_TIMEOUT), even
// after ctx has ended: deferred first in run, it sends the spans still
// queued once everything that makes spans has stopped.
func Flush(ctx context.Context, shutdown func(context.Context) error, timeout time.Duration, logger zerolog.Logger) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if err := shutdown(ctx); err != nil {
		logger.Warn().Err(err).Msg("some spans were not exported before the shutdown timeout")
	}
}
