// Command taskevents-local runs the whole system on this machine — broker, both sidecars
// and both apps — from the same components/ and subscriptions/ YAML as the cluster. It is
// what `make run` starts; Ctrl-C stops everything.
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
		fmt.Fprintf(os.Stderr, "make run: %v\n", err)
		os.Exit(1)
	}
}
