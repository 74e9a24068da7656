// Command bench is `make bench`: the publisher and the worker against their anchors on
// this machine (package bench says how). Run as BENCH_ROLE=loadgen it is instead the
// open-loop load generator the bench starts as a second process.
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
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}
