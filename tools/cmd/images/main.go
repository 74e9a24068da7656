// Command images builds the cluster's container images by hand, without Docker (see package
// github.com/taskevents/taskevents/tools/images), and prints one "ref tar" line per image.
// From the repository root, after the binaries are built:
//
//	make build
//	go run ./tools/cmd/images -out /tmp/images \
//	  -publisher bin/publisher -worker bin/worker \
//	  -daprd "$(tools/daprd/build.sh)" -dapr-control-plane "$(tools/daprd/build-control-plane.sh)" \
//	  -coredns "$(tools/coredns/build.sh)"
//
// then import each with `ctr -n k8s.io images import --all-platforms <tar>`.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/taskevents/taskevents/tools/images"
)

func main() {
	var in images.Inputs
	chart := flag.String("chart", "charts/taskevents/Chart.yaml", "Chart.yaml whose appVersion tags the app images, unless -app-version is given")
	flag.StringVar(&in.OutDir, "out", "", "directory for the image tarballs (required)")
	flag.StringVar(&in.Publisher, "publisher", "bin/publisher", "publisher binary")
	flag.StringVar(&in.Worker, "worker", "bin/worker", "worker binary")
	flag.StringVar(&in.Daprd, "daprd", "", "daprd binary (tools/daprd/build.sh)")
	flag.StringVar(&in.DaprControlPlaneDir, "dapr-control-plane", "", "directory of operator, injector, sentry, placement, scheduler (tools/daprd/build-control-plane.sh)")
	flag.StringVar(&in.CoreDNS, "coredns", "", "coredns binary (tools/coredns/build.sh)")
	flag.StringVar(&in.AppVersion, "app-version", "", "tag of the app images (default: the chart's appVersion)")
	flag.StringVar(&in.CacheDir, "cache", "", "cache directory (default: $TASKEVENTS_CACHE or ~/.cache/taskevents)")
	flag.Parse()
	if err := run(in, *chart); err != nil {
		fmt.Fprintf(os.Stderr, "images: %v\n", err)
		os.Exit(1)
	}
}

func run(in images.Inputs, chart string) error {
	if in.AppVersion == "" {
		v, err := images.ChartAppVersion(chart)
		if err != nil {
			return err
		}
		in.AppVersion = v
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	built, err := images.BuildAll(ctx, in)
	if err != nil {
		return err
	}
	for _, img := range built {
		fmt.Printf("%s %s\n", img.Ref, img.Tar)
	}
	fmt.Fprintf(os.Stderr, "built %d images in %s\n", len(built), time.Since(start).Round(time.Millisecond))
	return nil
}
