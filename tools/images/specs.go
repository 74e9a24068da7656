package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Host files the images take from Debian 12's packages.
const (
	hostCACerts     = "/etc/ssl/certs/ca-certificates.crt" // ca-certificates
	hostRedisServer = "/usr/bin/redis-server"              // redis-server
	hostBusybox     = "/bin/busybox"                       // busybox-static
)

const (
	nonroot = 65532
	// User is what distroless :nonroot images run as.
	nonrootUser = "65532:65532"
	// pauseUser is what registry.k8s.io/pause runs as (build/pause/Dockerfile).
	pauseUser = "65535:65535"
	// defaultPath is the PATH docker gives images and distroless keeps.
	defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// capNetBindService is the security.capability xattr `setcap cap_net_bind_service=+ep`
// writes (struct vfs_cap_data, revision 2, little endian): effective flag set, permitted
// bit 10 (CAP_NET_BIND_SERVICE). CoreDNS's Dockerfile sets it on /coredns.
var capNetBindService = string([]byte{
	0x01, 0x00, 0x00, 0x02, // magic_etc: VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE
	0x00, 0x04, 0x00, 0x00, // data[0].permitted: 1 << CAP_NET_BIND_SERVICE
	0x00, 0x00, 0x00, 0x00, // data[0].inheritable
	0x00, 0x00, 0x00, 0x00, // data[1].permitted
	0x00, 0x00, 0x00, 0x00, // data[1].inheritable
})

// The files gcr.io/distroless/static-debian12 has in /etc (common/BUILD.bazel in
// GoogleContainerTools/distroless), with Debian's default nsswitch.conf.
const (
	distrolessPasswd = `root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
`
	distrolessGroup = `root:x:0:
nobody:x:65534:
tty:x:5:
staff:x:50:
nonroot:x:65532:
`
	nsswitchConf = `# /etc/nsswitch.conf: Debian's default.
passwd:         files
group:          files
shadow:         files
gshadow:        files

hosts:          files dns
networks:       files

protocols:      db files
services:       db files
ethers:         db files
rpc:            db files

netgroup:       nis
`
)

// baseEntries is the distroless static:nonroot equivalent every image but pause sits on.
func baseEntries() []entry {
	return []entry{
		dir("/etc", 0o755, 0, 0),
		inline("/etc/passwd", 0o644, distrolessPasswd),
		inline("/etc/group", 0o644, distrolessGroup),
		inline("/etc/nsswitch.conf", 0o644, nsswitchConf),
		file("/etc/ssl/certs/ca-certificates.crt", 0o644, hostCACerts),
		dir("/home", 0o755, 0, 0),
		dir("/home/nonroot", 0o700, nonroot, nonroot),
		dir("/root", 0o700, 0, 0),
		dir("/tmp", 0o1777, 0, 0),
	}
}

// distrolessConfig is the config of an image on baseEntries: distroless's environment and
// working directory, user 65532:65532.
func distrolessConfig() v1.Config {
	return v1.Config{
		Env:        []string{defaultPath, "SSL_CERT_FILE=" + hostCACerts},
		User:       nonrootUser,
		WorkingDir: "/home/nonroot",
	}
}

type imageSpec struct {
	name   string // the tarball's base name in OutDir
	ref    string
	config v1.Config
	layers []*cachedLayer
	what   []string // each layer's History.CreatedBy
}

// imageSpecs builds (or takes from the cache) every layer and describes every image.
func (b *builder) imageSpecs(in Inputs) ([]imageSpec, error) {
	base, err := b.layer("base", baseEntries())
	if err != nil {
		return nil, err
	}
	onBase := func(name, ref string, cfg v1.Config, what string, entries []entry) (imageSpec, error) {
		l, err := b.layer(name, entries)
		if err != nil {
			return imageSpec{}, err
		}
		return imageSpec{name: name, ref: ref, config: cfg,
			layers: []*cachedLayer{base, l}, what: []string{"distroless static:nonroot equivalent", what}}, nil
	}
	var specs []imageSpec
	add := func(s imageSpec, err error) error {
		if err == nil {
			specs = append(specs, s)
		}
		return err
	}

	// The apps, as publisher/Dockerfile and worker/Dockerfile build them.
	for _, app := range []struct{ name, ref, bin, port string }{
		{"publisher", PublisherRef(in.AppVersion), in.Publisher, "8000/tcp"},
		{"worker", WorkerRef(in.AppVersion), in.Worker, "8001/tcp"},
	} {
		cfg := distrolessConfig()
		cfg.Entrypoint = []string{"/" + app.name}
		cfg.ExposedPorts = map[string]struct{}{app.port: {}}
		if err := add(onBase(app.name, app.ref, cfg, "COPY "+app.name+" /"+app.name,
			[]entry{file("/"+app.name, 0o755, app.bin)})); err != nil {
			return nil, err
		}
	}

	// Dapr, as dapr's docker/Dockerfile builds both: WORKDIR /, the binaries at /, no
	// entrypoint. The daprd layer is shared, so containerd stores it once.
	daprd, err := b.layer("daprd", []entry{file("/daprd", 0o755, in.Daprd)})
	if err != nil {
		return nil, err
	}
	var cp []entry
	for _, c := range DaprControlPlane {
		cp = append(cp, file("/"+c, 0o755, filepath.Join(in.DaprControlPlaneDir, c)))
	}
	control, err := b.layer("dapr-control-plane", cp)
	if err != nil {
		return nil, err
	}
	daprCfg := distrolessConfig()
	daprCfg.WorkingDir = "/"
	specs = append(specs,
		imageSpec{name: "dapr", ref: DaprRef, config: daprCfg,
			layers: []*cachedLayer{base, daprd, control},
			what:   []string{"distroless static:nonroot equivalent", "COPY daprd /", "COPY " + strings.Join(DaprControlPlane, " ") + " /"}},
		imageSpec{name: "daprd", ref: DaprdRef, config: daprCfg,
			layers: []*cachedLayer{base, daprd},
			what:   []string{"distroless static:nonroot equivalent", "COPY daprd /"}})

	// pause: FROM scratch, as build/pause/Dockerfile.
	pauseBin, err := b.compilePause()
	if err != nil {
		return nil, err
	}
	pause, err := b.layer("pause", []entry{file("/pause", 0o755, pauseBin)})
	if err != nil {
		return nil, err
	}
	specs = append(specs, imageSpec{name: "pause", ref: PauseRef,
		config: v1.Config{Env: []string{defaultPath}, User: pauseUser, Entrypoint: []string{"/pause"}},
		layers: []*cachedLayer{pause}, what: []string{"ADD pause /pause"}})

	// CoreDNS, as its Dockerfile: the capability lets 65532 bind :53.
	dnsCfg := distrolessConfig()
	dnsCfg.WorkingDir = "/"
	dnsCfg.Entrypoint = []string{"/coredns"}
	dnsCfg.ExposedPorts = map[string]struct{}{"53/tcp": {}, "53/udp": {}}
	dns := file("/coredns", 0o755, in.CoreDNS)
	dns.xattrs = map[string]string{"security.capability": capNetBindService}
	if err := add(onBase("coredns", CoreDNSRef, dnsCfg, "COPY coredns /coredns; setcap cap_net_bind_service=+ep /coredns",
		[]entry{dns})); err != nil {
		return nil, err
	}

	// redis-server and its shared libraries, /data for its --dir.
	redis, err := b.withLibs(file(hostRedisServer, 0o755, hostRedisServer))
	if err != nil {
		return nil, err
	}
	redis = append(redis, dir("/data", 0o755, nonroot, nonroot))
	redisCfg := distrolessConfig()
	redisCfg.WorkingDir = "/data"
	redisCfg.Entrypoint = []string{hostRedisServer}
	redisCfg.ExposedPorts = map[string]struct{}{"6379/tcp": {}}
	if err := add(onBase("redis", RedisRef, redisCfg, "COPY redis-server and the libraries ldd lists", redis)); err != nil {
		return nil, err
	}

	// busybox, for the chart's helm test.
	bb, err := b.busyboxEntries()
	if err != nil {
		return nil, err
	}
	bbCfg := distrolessConfig()
	bbCfg.Cmd = []string{"sh"}
	if err := add(onBase("busybox", BusyboxRef, bbCfg, "COPY busybox /bin/busybox and its applet links", bb)); err != nil {
		return nil, err
	}
	return specs, nil
}

// image assembles a spec into a linux/amd64 docker image.
func (s imageSpec) image() (v1.Image, error) {
	cf, err := empty.Image.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	// ctr and the kubelet match these against the node's platform.
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Created = v1.Time{Time: epoch}
	cf.Config = s.config
	img, err := mutate.ConfigFile(empty.Image, cf)
	if err != nil {
		return nil, err
	}
	adds := make([]mutate.Addendum, len(s.layers))
	for i, l := range s.layers {
		adds[i] = mutate.Addendum{Layer: l, History: v1.History{Created: v1.Time{Time: epoch},
			CreatedBy: "taskevents tools/images: " + s.what[i]}}
	}
	return mutate.Append(img, adds...)
}

// writeImage writes the image's tarball into the cache, unless a tarball of the same ref
// and manifest is there, and links it to dst.
func (b *builder) writeImage(s imageSpec, dst string) (string, error) {
	if err := b.ctx.Err(); err != nil {
		return "", err
	}
	tag, err := name.NewTag(s.ref, name.StrictValidation)
	if err != nil {
		return "", err
	}
	img, err := s.image()
	if err != nil {
		return "", err
	}
	d, err := img.Digest()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(s.ref + "\n" + d.String()))
	cached := filepath.Join(b.cache, "tars", s.name+"-"+hex.EncodeToString(sum[:])[:32]+".tar")
	if _, err := os.Stat(cached); err != nil {
		f, err := os.CreateTemp(filepath.Dir(cached), ".image-*")
		if err != nil {
			return "", err
		}
		defer os.Remove(f.Name())
		if err := tarball.Write(tag, img, f); err != nil {
			f.Close()
			return "", err
		}
		if err := f.Close(); err != nil {
			return "", err
		}
		if err := os.Chmod(f.Name(), 0o644); err != nil {
			return "", err
		}
		if err := os.Rename(f.Name(), cached); err != nil {
			return "", err
		}
	}
	prune(filepath.Join(b.cache, "tars", s.name+"-"+hexGlob+".tar"), cached)
	if err := linkOrCopy(cached, dst); err != nil {
		return "", err
	}
	return dst, nil
}

// output runs a command and returns its stdout, with stderr in the error.
func (b *builder) output(args ...string) ([]byte, error) {
	return commandOutput(b.ctx, args...)
}

func commandOutput(ctx context.Context, args ...string) ([]byte, error) {
	cmd := execCommand(ctx, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// fileExists reports whether p is a regular file (after symlinks).
func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}
