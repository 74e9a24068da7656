// Command gosdk-publisher is a bench anchor: the publisher's POST /tasks written the way a
// Go user of the official Dapr go-sdk would write it, over gRPC, with one shared client. It
// does the same work as the publisher (validate, new id, publish task.created with the same
// payload and CloudEvent metadata, answer 202) and nothing more, so `make bench` can put the
// raw-HTTP publisher beside it. It lives in its own module, outside go.work, so the go-sdk's
// dependencies (grpc, dapr/dapr's protos) never enter the apps' builds.
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
		fmt.Fprintf(os.Stderr, "gosdk-publisher: %v\n", err)
		os.Exit(1)
	}
}
