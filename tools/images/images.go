// Package images builds, without Docker and without pulling a base image, the linux/amd64
// container images the single-node Kubernetes cluster of the e2e tests runs, as
// docker-archive tarballs (what `docker save` writes) that
//
//	ctr -n k8s.io images import --all-platforms <tar>
//
// imports into containerd. Every image but pause sits on one shared layer equivalent to
// gcr.io/distroless/static-debian12:nonroot (/etc/passwd and /etc/group with root and nonroot,
// /etc/nsswitch.conf, Debian's CA bundle, /tmp 1777, /root and /home/nonroot), the rest is
// the binaries the repository builds (the apps, the pinned daprd, Dapr control plane and
// CoreDNS) or the host's Debian packages (redis-server, busybox-static), and
// Kubernetes' own pause.c compiled with gcc.
//
// Layers are uncompressed (containerd accepts them, and gzip would cost more CPU than the
// bytes it saves on a local import) and cached under the cache directory, keyed by the
// sha256 of what goes into them; whole image tarballs are cached by ref and manifest digest
// and hard-linked (or copied) into Inputs.OutDir. A warm BuildAll only hashes its inputs.
package images

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// Versions of what the images hold. They must match the pinned sources: tools/daprd/go.mod
// (Dapr), tools/coredns/go.mod (CoreDNS), tools/kube/go.mod (the Kubernetes tree pause.c is
// taken from) and Debian 12's packages; the package's tests check the go.mod files, and
// BuildAll checks every binary it is given.
const (
	DaprVersion       = "1.18.2"
	CoreDNSVersion    = "1.15.0"
	KubernetesVersion = "v1.37.2"
	// PauseVersion is build/pause/Makefile's TAG in KubernetesVersion's tree.
	PauseVersion   = "3.10.2"
	RedisVersion   = "7.0.15"
	BusyboxVersion = "1.35.0"
)

// Image references. The app images take their tag from the chart's appVersion (see
// PublisherRef, WorkerRef and ChartAppVersion); the others are fixed.
const (
	PublisherRepo = "ghcr.io/taskevents/publisher"
	WorkerRepo    = "ghcr.io/taskevents/worker"
	// DaprRef holds /operator, /injector, /sentry, /placement, /scheduler and /daprd, as
	// dapr's docker/Dockerfile builds it (no entrypoint: the Dapr chart names the command).
	// Install the Dapr chart with dapr_operator.image.name, dapr_placement.image.name,
	// dapr_sentry.image.name, dapr_scheduler.image.name and
	// dapr_sidecar_injector.injectorImage.name set to "dapr".
	DaprRef = "ghcr.io/dapr/dapr:" + DaprVersion
	// DaprdRef holds /daprd only: the sidecar image the injector adds to app pods.
	DaprdRef = "ghcr.io/dapr/daprd:" + DaprVersion
	// PauseRef is the sandbox image: FROM scratch, /pause, USER 65535:65535, as upstream.
	PauseRef = "registry.k8s.io/pause:" + PauseVersion
	// CoreDNSRef runs /coredns as 65532 with the cap_net_bind_service file capability the
	// upstream image sets, so it can bind :53 without root.
	CoreDNSRef = "registry.k8s.io/coredns/coredns:v" + CoreDNSVersion
	// RedisRef is Debian 12's redis-server with the shared libraries ldd lists, run as 65532
	// in /data. With no config file redis is in protected mode: pass --protected-mode no (or a
	// password) for clients from other pods, and --dir on a writable volume.
	RedisRef = "localhost/taskevents/redis-server:" + RedisVersion + "-debian12"
	// BusyboxRef is Debian 12's busybox-static with a /bin/<applet> symlink for every applet,
	// run as 65532: the chart's `helm test` image. Its wget has no -T (timeout) option: given
	// one, Debian's build segfaults; use `timeout N wget ...` instead.
	BusyboxRef = "docker.io/library/busybox:" + BusyboxVersion
)

// PublisherRef is the publisher image's reference for an app version (the chart's appVersion).
func PublisherRef(appVersion string) string { return PublisherRepo + ":" + appVersion }

// WorkerRef is the worker image's reference for an app version (the chart's appVersion).
func WorkerRef(appVersion string) string { return WorkerRepo + ":" + appVersion }

// DaprControlPlane lists the binaries Inputs.DaprControlPlaneDir must hold
// (tools/daprd/build-control-plane.sh builds them).
var DaprControlPlane = []string{"operator", "injector", "sentry", "placement", "scheduler"}

// Image is one built image: its reference and the docker-archive tarball holding it.
type Image struct{ Ref, Tar string }

// Inputs are the binaries BuildAll packs. Every field but CacheDir is required.
type Inputs struct {
	// OutDir receives one <name>.tar per image (publisher.tar, dapr.tar, ...), replacing
	// what is there.
	OutDir string
	// Publisher and Worker are the apps' static binaries (make build).
	Publisher, Worker string
	// Daprd is the pinned daprd (tools/daprd/build.sh).
	Daprd string
	// DaprControlPlaneDir holds DaprControlPlane (tools/daprd/build-control-plane.sh).
	DaprControlPlaneDir string
	// CoreDNS is the pinned coredns (tools/coredns/build.sh).
	CoreDNS string
	// AppVersion tags the publisher and worker images: the chart's appVersion, see
	// ChartAppVersion.
	AppVersion string
	// CacheDir holds the cached layers, tarballs and the compiled pause; empty means
	// DefaultCacheDir(). It can be deleted at any time.
	CacheDir string
}

// DefaultCacheDir is where the tools/*/build.sh scripts cache their builds:
// ${TASKEVENTS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/taskevents}.
func DefaultCacheDir() (string, error) {
	if d := os.Getenv("TASKEVENTS_CACHE"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "taskevents"), nil
}

// ChartAppVersion reads appVersion from a Chart.yaml (charts/taskevents/Chart.yaml): the
// default tag of both app images.
func ChartAppVersion(chartYAML string) (string, error) {
	b, err := os.ReadFile(chartYAML)
	if err != nil {
		return "", err
	}
	var chart struct {
		AppVersion string `yaml:"appVersion"`
	}
	if err := yaml.Unmarshal(b, &chart); err != nil {
		return "", fmt.Errorf("%s: %w", chartYAML, err)
	}
	if chart.AppVersion == "" {
		return "", fmt.Errorf("%s: no appVersion", chartYAML)
	}
	return chart.AppVersion, nil
}

// BuildAll builds every image and returns them in a fixed order: publisher, worker, dapr,
// daprd, pause, coredns, redis, busybox. Besides Inputs it needs, on the host, gcc
// with a static libc (libc6-dev), Kubernetes' module source (downloaded through the Go module
// proxy if missing), ldd, /usr/bin/redis-server and /bin/busybox (busybox-static) at the
// versions above.
func BuildAll(ctx context.Context, in Inputs) ([]Image, error) {
	if err := in.validate(); err != nil {
		return nil, err
	}
	cache := in.CacheDir
	if cache == "" {
		var err error
		if cache, err = DefaultCacheDir(); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(in.OutDir, 0o755); err != nil {
		return nil, err
	}
	b, err := newBuilder(ctx, cache)
	if err != nil {
		return nil, err
	}
	if checkVersions {
		if err := in.checkVersions(ctx); err != nil {
			return nil, err
		}
	}
	specs, err := b.imageSpecs(in)
	if err != nil {
		return nil, err
	}
	out := make([]Image, 0, len(specs))
	for _, s := range specs {
		tar, err := b.writeImage(s, filepath.Join(in.OutDir, s.name+".tar"))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.ref, err)
		}
		out = append(out, Image{Ref: s.ref, Tar: tar})
	}
	return out, nil
}

func (in Inputs) validate() error {
	var errs []error
	need := func(what, path string, dir bool) {
		if path == "" {
			errs = append(errs, fmt.Errorf("images: Inputs.%s is empty", what))
			return
		}
		fi, err := os.Stat(path)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("images: Inputs.%s: %w", what, err))
		case dir && !fi.IsDir():
			errs = append(errs, fmt.Errorf("images: Inputs.%s: %s is not a directory", what, path))
		case !dir && !fi.Mode().IsRegular():
			errs = append(errs, fmt.Errorf("images: Inputs.%s: %s is not a regular file", what, path))
		}
	}
	if in.OutDir == "" {
		errs = append(errs, errors.New("Inputs.OutDir is empty"))
	}
	if in.AppVersion == "" || strings.ContainsAny(in.AppVersion, ":/@ ") {
		errs = append(errs, fmt.Errorf("Inputs.AppVersion %q is not a tag (see ChartAppVersion)", in.AppVersion))
	}
	need("Publisher", in.Publisher, false)
	need("Worker", in.Worker, false)
	need("Daprd", in.Daprd, false)
	need("CoreDNS", in.CoreDNS, false)
	need("DaprControlPlaneDir", in.DaprControlPlaneDir, true)
	if in.DaprControlPlaneDir != "" {
		for _, c := range DaprControlPlane {
			need("DaprControlPlaneDir", filepath.Join(in.DaprControlPlaneDir, c), false)
		}
	}
	return errors.Join(errs...)
}
