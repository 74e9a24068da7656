package main

import (
	"context"
	"io"
	"slices"
	"strings"

	"github.com/taskevents/taskevents/tools/bench"
)

func run(ctx context.Context, environ []string, stdout io.Writer) error {
	if slices.ContainsFunc(environ, func(kv string) bool { return strings.TrimSpace(kv) == "BENCH_ROLE=loadgen" }) {
		return bench.Loadgen(ctx, environ, stdout)
	}
	cfg, err := bench.LoadConfig(environ)
	if err != nil {
		return err
	}
	return bench.Run(ctx, cfg, stdout)
}
