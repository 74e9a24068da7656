// Command noop-worker is the bench's anchor for the worker: it answers daprd's deliveries on
// the worker's routes with SUCCESS and does nothing else, so the drain rate it reaches is
// what the sidecar delivers when the app costs (almost) nothing. It accepts single and bulk
// deliveries and counts the events it answered at GET /count, a plain number a bench can
// poll until the backlog is worked off.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Environ(), os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "noop-worker: %v\n", err)
		os.Exit(1)
	}
}
