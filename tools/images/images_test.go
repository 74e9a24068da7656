package images

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// fakeInputs writes stand-in binaries (shell scripts with known content) for the Go
// binaries and turns off the version checks they would fail; redis-server, busybox and
// pause are the real ones from the host.
func fakeInputs(t *testing.T) Inputs {
	t.Helper()
	for _, tool := range []string{"gcc", "strip", "ldd", hostRedisServer, hostBusybox, hostCACerts} {
		if _, err := exec.LookPath(tool); err != nil && !fileExists(tool) {
			t.Skipf("%s is missing on this host (tools/prereqs.sh installs redis-server and busybox-static; gcc and libc6-dev are needed for pause)", tool)
		}
	}
	old := checkVersions
	checkVersions = false
	t.Cleanup(func() { checkVersions = old })
	dir := t.TempDir()
	bin := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(fakeContent(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cp := filepath.Join(dir, "control-plane")
	if err := os.Mkdir(cp, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range DaprControlPlane {
		bin(filepath.Join("control-plane", c))
	}
	return Inputs{
		OutDir:              filepath.Join(dir, "out"),
		CacheDir:            filepath.Join(dir, "cache"),
		Publisher:           bin("publisher"),
		Worker:              bin("worker"),
		Daprd:               bin("daprd"),
		DaprControlPlaneDir: cp,
		CoreDNS:             bin("coredns"),
		AppVersion:          "1.2.3",
	}
}

func fakeContent(name string) string {
	return "#!/bin/sh\necho fake " + filepath.Base(name) + "\n"
}

// fileWant is what a path in an image's flattened filesystem must be.
type fileWant struct {
	typ      byte
	mode     int64
	uid, gid int
	content  string // checked when not empty
	link     string
}

var (
	fakeBin = func(name string) fileWant { return fileWant{tar.TypeReg, 0o755, 0, 0, fakeContent(name), ""} }
	base    = map[string]fileWant{
		"etc/passwd":                        {tar.TypeReg, 0o644, 0, 0, distrolessPasswd, ""},
		"etc/group":                         {tar.TypeReg, 0o644, 0, 0, distrolessGroup, ""},
		"etc/nsswitch.conf":                 {tar.TypeReg, 0o644, 0, 0, nsswitchConf, ""},
		"etc/ssl/certs/ca-certificates.crt": {tar.TypeReg, 0o644, 0, 0, "", ""},
		"tmp":                               {tar.TypeDir, 0o1777, 0, 0, "", ""},
		"home/nonroot":                      {tar.TypeDir, 0o700, nonroot, nonroot, "", ""},
		"root":                              {tar.TypeDir, 0o700, 0, 0, "", ""},
		"etc/ssl":                           {tar.TypeDir, 0o755, 0, 0, "", ""},
	}
)

func with(m map[string]fileWant, more map[string]fileWant) map[string]fileWant {
	out := map[string]fileWant{}
	for k, v := range m {
		out[k] = v
	}
	for k, v := range more {
		out[k] = v
	}
	return out
}

func TestBuildAll(t *testing.T) {
	in := fakeInputs(t)
	start := time.Now()
	built, err := BuildAll(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cold BuildAll with stand-in binaries: %s", time.Since(start))

	daprFiles := map[string]fileWant{"daprd": fakeBin("daprd")}
	for _, c := range DaprControlPlane {
		daprFiles[c] = fakeBin(c)
	}
	env := []string{defaultPath, "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"}
	tests := []struct {
		name, ref       string
		user, workdir   string
		entrypoint, cmd []string
		env             []string
		ports           []string
		files           map[string]fileWant
		absent          []string
	}{
		{"publisher", "ghcr.io/taskevents/publisher:1.2.3", "65532:65532", "/home/nonroot", []string{"/publisher"}, nil, env,
			[]string{"8000/tcp"}, with(base, map[string]fileWant{"publisher": fakeBin("publisher")}), []string{"bin/sh"}},
		{"worker", "ghcr.io/taskevents/worker:1.2.3", "65532:65532", "/home/nonroot", []string{"/worker"}, nil, env,
			[]string{"8001/tcp"}, with(base, map[string]fileWant{"worker": fakeBin("worker")}), []string{"publisher"}},
		{"dapr", "ghcr.io/dapr/dapr:1.18.2", "65532:65532", "/", nil, nil, env,
			nil, with(base, daprFiles), nil},
		{"daprd", "ghcr.io/dapr/daprd:1.18.2", "65532:65532", "/", nil, nil, env,
			nil, with(base, map[string]fileWant{"daprd": fakeBin("daprd")}), []string{"operator", "sentry"}},
		{"pause", "registry.k8s.io/pause:3.10.2", "65535:65535", "", []string{"/pause"}, nil, []string{defaultPath},
			nil, map[string]fileWant{"pause": {tar.TypeReg, 0o755, 0, 0, "", ""}}, []string{"etc/passwd", "tmp"}},
		{"coredns", "registry.k8s.io/coredns/coredns:v1.15.0", "65532:65532", "/", []string{"/coredns"}, nil, env,
			[]string{"53/tcp", "53/udp"}, with(base, map[string]fileWant{"coredns": fakeBin("coredns")}), nil},
		{"redis", "localhost/taskevents/redis-server:7.0.15-debian12", "65532:65532", "/data", []string{"/usr/bin/redis-server"}, nil, env,
			[]string{"6379/tcp"}, with(base, map[string]fileWant{
				"usr/bin/redis-server":             {tar.TypeReg, 0o755, 0, 0, "", ""},
				"lib64/ld-linux-x86-64.so.2":       {tar.TypeReg, 0o755, 0, 0, "", ""},
				"lib/x86_64-linux-gnu/libc.so.6":   {tar.TypeReg, 0o755, 0, 0, "", ""},
				"lib/x86_64-linux-gnu/libssl.so.3": {tar.TypeReg, 0o644, 0, 0, "", ""},
				"data":                             {tar.TypeDir, 0o755, nonroot, nonroot, "", ""},
			}), nil},
		{"busybox", "docker.io/library/busybox:1.35.0", "65532:65532", "/home/nonroot", nil, []string{"sh"}, env,
			nil, with(base, map[string]fileWant{
				"bin/busybox":  {tar.TypeReg, 0o755, 0, 0, "", ""},
				"bin/sh":       {tar.TypeSymlink, 0o777, 0, 0, "", "busybox"},
				"bin/wget":     {tar.TypeSymlink, 0o777, 0, 0, "", "busybox"},
				"bin/nslookup": {tar.TypeSymlink, 0o777, 0, 0, "", "busybox"},
				"bin/awk":      {tar.TypeSymlink, 0o777, 0, 0, "", "busybox"},
				"bin/grep":     {tar.TypeSymlink, 0o777, 0, 0, "", "busybox"},
				"bin/sort":     {tar.TypeSymlink, 0o777, 0, 0, "", "busybox"},
				"bin/tr":       {tar.TypeSymlink, 0o777, 0, 0, "", "busybox"},
				"bin/date":     {tar.TypeSymlink, 0o777, 0, 0, "", "busybox"},
				"bin/sleep":    {tar.TypeSymlink, 0o777, 0, 0, "", "busybox"},
				"bin/cat":      {tar.TypeSymlink, 0o777, 0, 0, "", "busybox"},
				"bin/printf":   {tar.TypeSymlink, 0o777, 0, 0, "", "busybox"},
				"bin/echo":     {tar.TypeSymlink, 0o777, 0, 0, "", "busybox"},
				"bin/timeout":  {tar.TypeSymlink, 0o777, 0, 0, "", "busybox"},
			}), nil},
	}
	if len(built) != len(tests) {
		t.Fatalf("BuildAll built %d images, want %d: %v", len(built), len(tests), built)
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if built[i].Ref != tt.ref || built[i].Tar != filepath.Join(in.OutDir, tt.name+".tar") {
				t.Fatalf("image %d is %+v, want %s in %s.tar", i, built[i], tt.ref, tt.name)
			}
			img := readImage(t, built[i])
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cf.OS != "linux" || cf.Architecture != "amd64" {
				t.Errorf("platform %s/%s, want linux/amd64 (ctr filters out other platforms)", cf.OS, cf.Architecture)
			}
			c := cf.Config
			if c.User != tt.user || c.WorkingDir != tt.workdir || !slices.Equal(c.Entrypoint, tt.entrypoint) ||
				!slices.Equal(c.Cmd, tt.cmd) || !slices.Equal(c.Env, tt.env) {
				t.Errorf("config user=%q workdir=%q entrypoint=%q cmd=%q env=%q, want %q %q %q %q %q",
					c.User, c.WorkingDir, c.Entrypoint, c.Cmd, c.Env, tt.user, tt.workdir, tt.entrypoint, tt.cmd, tt.env)
			}
			var ports []string
			for p := range c.ExposedPorts {
				ports = append(ports, p)
			}
			slices.Sort(ports)
			if !slices.Equal(ports, tt.ports) {
				t.Errorf("exposed ports %q, want %q", ports, tt.ports)
			}
			files := flatten(t, img)
			for p, want := range tt.files {
				got, ok := files[p]
				if !ok {
					t.Errorf("%s: missing", p)
					continue
				}
				if got.typ != want.typ || got.mode != want.mode || got.uid != want.uid || got.gid != want.gid || got.link != want.link {
					t.Errorf("%s: type %c mode %o owner %d:%d link %q, want %c %o %d:%d %q",
						p, got.typ, got.mode, got.uid, got.gid, got.link, want.typ, want.mode, want.uid, want.gid, want.link)
				}
				if want.content != "" && got.content != want.content {
					t.Errorf("%s: content %q, want %q", p, got.content, want.content)
				}
			}
			for _, p := range tt.absent {
				if _, ok := files[p]; ok {
					t.Errorf("%s: present, want absent", p)
				}
			}
		})
	}

	t.Run("shared layers", func(t *testing.T) {
		layers := map[string][]v1.Hash{}
		for _, b := range built {
			ls, err := readImage(t, b).Layers()
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range ls {
				d, err := l.DiffID()
				if err != nil {
					t.Fatal(err)
				}
				layers[b.Ref] = append(layers[b.Ref], d)
			}
		}
		baseLayer := layers[PublisherRef("1.2.3")][0]
		for ref, ls := range layers {
			if ref != PauseRef && ls[0] != baseLayer {
				t.Errorf("%s: first layer %s, want the shared base %s", ref, ls[0], baseLayer)
			}
		}
		if d, dd := layers[DaprRef], layers[DaprdRef]; len(d) != 3 || len(dd) != 2 || d[1] != dd[1] {
			t.Errorf("dapr layers %v and daprd layers %v do not share the daprd layer", d, dd)
		}
	})

	t.Run("coredns capability", func(t *testing.T) {
		ls, err := readImage(t, built[5]).Layers()
		if err != nil {
			t.Fatal(err)
		}
		hdrs := layerHeaders(t, ls[len(ls)-1])
		if got := hdrs["coredns"].PAXRecords["SCHILY.xattr.security.capability"]; got != capNetBindService {
			t.Errorf("/coredns security.capability %x, want %x (cap_net_bind_service=+ep)", got, capNetBindService)
		}
	})

	t.Run("warm rebuild reuses the cache", func(t *testing.T) {
		before := cacheFiles(t, in.CacheDir)
		start := time.Now()
		again, err := BuildAll(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("warm BuildAll: %s", time.Since(start))
		if !slices.Equal(again, built) {
			t.Fatalf("warm BuildAll returned %v, want %v", again, built)
		}
		if after := cacheFiles(t, in.CacheDir); !sameTimes(before, after) {
			t.Errorf("warm BuildAll rewrote cache files:\nbefore %v\nafter  %v", before, after)
		}
	})

	t.Run("a changed binary replaces only its layer and image", func(t *testing.T) {
		before := cacheFiles(t, in.CacheDir)
		if err := os.WriteFile(in.Publisher, []byte("#!/bin/sh\necho new publisher\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := BuildAll(context.Background(), in); err != nil {
			t.Fatal(err)
		}
		after := cacheFiles(t, in.CacheDir)
		var changed []string
		for f := range after {
			if _, ok := before[f]; !ok {
				changed = append(changed, f)
			}
		}
		for f := range before {
			if _, ok := after[f]; !ok {
				changed = append(changed, "-"+f)
			}
		}
		slices.Sort(changed)
		// New publisher layer (tar and json) and tarball; the old three are pruned.
		if len(changed) != 6 || !allHavePrefix(changed, "publisher-") {
			t.Errorf("cache changes %v, want only the publisher's layer and tarball replaced", changed)
		}
		files := flatten(t, readImage(t, Image{PublisherRef("1.2.3"), filepath.Join(in.OutDir, "publisher.tar")}))
		if got := files["publisher"].content; got != "#!/bin/sh\necho new publisher\n" {
			t.Errorf("publisher.tar holds %q, want the new binary", got)
		}
	})
}

// allHavePrefix reports whether every name, less a leading "-" (removed), has the prefix.
func allHavePrefix(names []string, prefix string) bool {
	for _, n := range names {
		if !strings.HasPrefix(strings.TrimPrefix(n, "-"), prefix) {
			return false
		}
	}
	return true
}

func sameTimes(a, b map[string]time.Time) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !w.Equal(v) {
			return false
		}
	}
	return true
}

// cacheFiles maps each layer and tarball file in the cache to its mtime.
func cacheFiles(t *testing.T, cache string) map[string]time.Time {
	t.Helper()
	out := map[string]time.Time{}
	for _, d := range []string{"layers", "tars"} {
		ents, err := os.ReadDir(filepath.Join(cache, cacheFormat, d))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			fi, err := e.Info()
			if err != nil {
				t.Fatal(err)
			}
			out[e.Name()] = fi.ModTime()
		}
	}
	return out
}

// readImage reads an image back from its tarball as ctr would find it: by its tag in
// manifest.json.
func readImage(t *testing.T, img Image) v1.Image {
	t.Helper()
	tag, err := name.NewTag(img.Ref, name.StrictValidation)
	if err != nil {
		t.Fatal(err)
	}
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(img.Tar) })
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 1 || !slices.Equal(m[0].RepoTags, []string{img.Ref}) {
		t.Fatalf("%s: manifest.json %+v, want one image tagged %s", img.Tar, m, img.Ref)
	}
	i, err := tarball.ImageFromPath(img.Tar, &tag)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

type fileGot struct {
	typ      byte
	mode     int64
	uid, gid int
	content  string
	link     string
}

// flatten reads an image's filesystem, the layers applied in order.
func flatten(t *testing.T, img v1.Image) map[string]fileGot {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	out := map[string]fileGot{}
	walkTar(t, rc, func(h *tar.Header, tr *tar.Reader) {
		f := fileGot{typ: h.Typeflag, mode: h.Mode, uid: h.Uid, gid: h.Gid, link: h.Linkname}
		if h.Typeflag == tar.TypeReg && h.Size < 1<<20 {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			f.content = string(b)
		}
		out[strings.TrimSuffix(h.Name, "/")] = f
	})
	return out
}

// walkTar calls fn for every entry of the tar stream r.
func walkTar(t *testing.T, r io.Reader, fn func(*tar.Header, *tar.Reader)) {
	t.Helper()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		fn(h, tr)
	}
}

func layerHeaders(t *testing.T, l v1.Layer) map[string]*tar.Header {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out := map[string]*tar.Header{}
	walkTar(t, rc, func(h *tar.Header, _ *tar.Reader) { out[h.Name] = h })
	return out
}

// TestImagesRun runs the images whose binaries are real, from their extracted root
// filesystems under chroot as their config's user: redis-server answers PING, busybox runs
// the helm test's pipelines, pause reports its version.
func TestImagesRun(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for chroot and for the images' file owners")
	}
	in := fakeInputs(t)
	built, err := BuildAll(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	rootfs := map[string]string{}
	for _, b := range built {
		rootfs[b.Ref] = extract(t, readImage(t, b))
	}
	chroot := func(ref, user string, args ...string) *exec.Cmd {
		return exec.Command("chroot", append([]string{"--userspec=" + user, rootfs[ref]}, args...)...)
	}

	t.Run("redis", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		cmd := chroot(RedisRef, nonrootUser, "/usr/bin/redis-server", "--port", strconv.Itoa(port),
			"--bind", "127.0.0.1", "--dir", "/data", "--save", "")
		var logs strings.Builder
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}()
		deadline := time.Now().Add(10 * time.Second)
		for {
			reply, err := ping(port)
			if err == nil && reply == "+PONG" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no PONG from redis-server in its image (%q, %v); its output:\n%s", reply, err, logs.String())
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	t.Run("busybox", func(t *testing.T) {
		script := `set -eu
id -u
printf 'Server: 10.96.0.10\nAddress: 10.96.0.10:53\n\nName: w\nAddress: 10.244.0.7\nName: w\nAddress: 10.244.0.5\n' \
  | awk '/^Name:/ { found = 1 } found' | grep -oE '([0-9]{1,3}\.){3}[0-9]{1,3}' | sort -u | tr '\n' ' '
echo
[ "$(date +%s)" -gt 0 ] && sleep 0 && echo ok > /tmp/ok && cat /tmp/ok
for a in nslookup wget timeout; do [ "$(readlink /bin/$a)" = busybox ] && [ -x /bin/$a ] && echo $a; done`
		out, err := chroot(BusyboxRef, nonrootUser, "/bin/sh", "-c", script).CombinedOutput()
		want := "65532\n10.244.0.5 10.244.0.7 \nok\nnslookup\nwget\ntimeout\n"
		if err != nil || string(out) != want {
			t.Errorf("busybox sh: %v\n%s\nwant:\n%s", err, out, want)
		}
	})

	t.Run("pause", func(t *testing.T) {
		out, err := chroot(PauseRef, pauseUser, "/pause", "-v").CombinedOutput()
		if err != nil || string(out) != "pause.c v3.10.2-taskevents\n" {
			t.Errorf("pause -v: %v %q", err, out)
		}
	})
}

func ping(port int) (string, error) {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "PING\r\n"); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

// extract unpacks an image's filesystem with its owners and modes into a new directory.
func extract(t *testing.T, img v1.Image) string {
	t.Helper()
	root := t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return root
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root, filepath.Clean("/"+h.Name))
		mode := os.FileMode(h.Mode & 0o777)
		if h.Mode&0o1000 != 0 {
			mode |= os.ModeSticky
		}
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o755)
		case tar.TypeReg:
			var f *os.File
			if f, err = os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600); err == nil {
				_, err = io.Copy(f, tr)
				f.Close()
			}
		case tar.TypeSymlink:
			err = os.Symlink(h.Linkname, p)
		default:
			t.Fatalf("%s: unexpected type %c", h.Name, h.Typeflag)
		}
		if err == nil {
			err = os.Lchown(p, h.Uid, h.Gid)
		}
		if err == nil && h.Typeflag != tar.TypeSymlink {
			err = os.Chmod(p, mode)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestInputsValidate(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "bin")
	if err := os.WriteFile(f, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	ok := Inputs{OutDir: dir, Publisher: f, Worker: f, Daprd: f, DaprControlPlaneDir: dir, CoreDNS: f, AppVersion: "0.1.0"}
	for _, c := range DaprControlPlane {
		if err := os.WriteFile(filepath.Join(dir, c), nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		edit  func(*Inputs)
		wants []string
	}{
		{"complete", func(*Inputs) {}, nil},
		{"nothing", func(in *Inputs) { *in = Inputs{} }, []string{"OutDir is empty", "AppVersion", "Publisher is empty", "DaprControlPlaneDir is empty"}},
		{"missing binary", func(in *Inputs) { in.Daprd = filepath.Join(dir, "nope") }, []string{"Inputs.Daprd: stat"}},
		{"file for a directory", func(in *Inputs) { in.DaprControlPlaneDir = f }, []string{"is not a directory"}},
		{"directory for a file", func(in *Inputs) { in.CoreDNS = dir }, []string{"is not a regular file"}},
		{"ref as app version", func(in *Inputs) { in.AppVersion = "ghcr.io/x:1" }, []string{"is not a tag"}},
		{"incomplete control plane", func(in *Inputs) { in.DaprControlPlaneDir = t.TempDir() }, []string{"operator", "scheduler"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := ok
			tt.edit(&in)
			err := in.validate()
			if (err == nil) != (len(tt.wants) == 0) {
				t.Fatalf("validate: %v, want errors %q", err, tt.wants)
			}
			for _, w := range tt.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("validate: %v, want it to mention %q", err, w)
				}
			}
		})
	}
}

func TestParseLdd(t *testing.T) {
	tests := []struct {
		name, out string
		want      []string
		wantErr   bool
	}{
		{"redis", `	linux-vdso.so.1 (0x00007ffd)
	libssl.so.3 => /lib/x86_64-linux-gnu/libssl.so.3 (0x00007f39)
	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f39)
	/lib64/ld-linux-x86-64.so.2 (0x00007f39)
`, []string{"/lib/x86_64-linux-gnu/libssl.so.3", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"}, false},
		{"static", "\tstatically linked\n", nil, false},
		{"missing library", "\tlibfoo.so.1 => not found\n", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseLdd([]byte(tt.out))
			if (err != nil) != tt.wantErr || !slices.Equal(got, tt.want) {
				t.Errorf("parseLdd = %q, %v; want %q (error %v)", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestGoModuleVersion(t *testing.T) {
	// A test binary records no dependencies; the images command does.
	self := filepath.Join(t.TempDir(), "images")
	if out, err := exec.Command("go", "build", "-o", self, "../cmd/images").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if got, err := goModuleVersion(self, "github.com/google/go-containerregistry"); err != nil || got != "v0.22.1" {
		t.Errorf("the images command's go-containerregistry: %q, %v; want v0.22.1", got, err)
	}
	if _, err := goModuleVersion(self, "github.com/dapr/dapr"); err == nil {
		t.Error("want an error for a module the binary is not built from")
	}
	if _, err := goModuleVersion(hostCACerts, "github.com/dapr/dapr"); err == nil {
		t.Error("want an error for a file that is not a Go binary")
	}
}

// TestPinnedVersions keeps the constants in step with the tool modules that build the
// binaries and the Kubernetes tree pause.c comes from.
func TestPinnedVersions(t *testing.T) {
	for _, tt := range []struct{ gomod, require string }{
		{"../../tools/daprd/go.mod", "github.com/dapr/dapr v" + DaprVersion},
		{"../../tools/coredns/go.mod", "github.com/coredns/coredns v" + CoreDNSVersion},
		{"../../tools/kube/go.mod", "k8s.io/kubernetes " + KubernetesVersion},
	} {
		b, err := os.ReadFile(tt.gomod)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, line := range strings.Split(string(b), "\n") {
			line, _, _ = strings.Cut(strings.TrimSpace(line), "//")
			if strings.TrimSpace(line) == tt.require {
				found = true
			}
		}
		if !found {
			t.Errorf("%s does not require %s", tt.gomod, tt.require)
		}
	}
}

func TestChartAppVersion(t *testing.T) {
	v, err := ChartAppVersion("../../charts/taskevents/Chart.yaml")
	if err != nil || v == "" || strings.ContainsAny(v, ":/@ ") {
		t.Errorf("ChartAppVersion(charts/taskevents/Chart.yaml) = %q, %v; want a tag", v, err)
	}
	dir := t.TempDir()
	for _, tt := range []struct{ name, yaml, want string }{
		{"quoted", "apiVersion: v2\nappVersion: \"2.0.1\"\n", "2.0.1"},
		{"missing", "apiVersion: v2\nversion: 0.1.0\n", ""},
		{"not yaml", "appVersion: [\n", ""},
	} {
		p := filepath.Join(dir, tt.name+".yaml")
		if err := os.WriteFile(p, []byte(tt.yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := ChartAppVersion(p)
		if got != tt.want || (err == nil) != (tt.want != "") {
			t.Errorf("%s: ChartAppVersion = %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
}
