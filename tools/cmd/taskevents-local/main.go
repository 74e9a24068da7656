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

	"golang.org/x/sys/unix"
)

func main() {
	// `make run` is this process's parent. If make is stopped by SIGTERM it exits without
	// signalling its children; asking the kernel for SIGTERM when the parent dies lets the
	// normal shutdown below stop every broker, sidecar and app even then.
	_ = unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0, 0, 0)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Environ(), os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "make run: %v\n", err)
		os.Exit(1)
	}
}
