package images

import (
	"bufio"
	"bytes"
	"context"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// checkVersions makes BuildAll check that each binary is the version its ref names; the
// package's tests turn it off for their stand-in binaries.
var checkVersions = true

func execCommand(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	return cmd
}

// withLibs returns bin's entry and one for every shared library `ldd` lists, the dynamic
// loader included, each at the path ldd prints (what the loader and the binary's PT_INTERP
// look up) with the content of the file it resolves to.
func (b *builder) withLibs(bin entry) ([]entry, error) {
	if !fileExists(bin.src) {
		return nil, fmt.Errorf("%s is missing (see tools/prereqs.sh)", bin.src)
	}
	bin.src = resolve(bin.src)
	out, err := b.output("ldd", bin.src)
	if err != nil {
		return nil, err
	}
	libs, err := parseLdd(out)
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", bin.src, err)
	}
	entries := []entry{bin}
	for _, lib := range libs {
		target := resolve(lib)
		fi, err := os.Stat(target)
		if err != nil {
			return nil, err
		}
		entries = append(entries, file(lib, int64(fi.Mode().Perm()), target))
	}
	return entries, nil
}

func resolve(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

// parseLdd returns the absolute paths in ldd's output: "libc.so.6 => /lib/.../libc.so.6
// (0x...)" and the loader's "/lib64/ld-linux-x86-64.so.2 (0x...)"; the vDSO has no file.
func parseLdd(out []byte) ([]string, error) {
	var libs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "linux-vdso.so") || line == "statically linked" {
			continue
		}
		if strings.Contains(line, "not found") {
			return nil, fmt.Errorf("missing library: %s", line)
		}
		p := strings.Fields(line)[0]
		if _, after, ok := strings.Cut(line, "=> "); ok {
			p = strings.Fields(after)[0]
		}
		if !filepath.IsAbs(p) {
			return nil, fmt.Errorf("unexpected ldd line %q", line)
		}
		libs = append(libs, filepath.Clean(p))
	}
	return libs, sc.Err()
}

// busyboxEntries is Debian's static busybox at /bin/busybox and a /bin/<applet> symlink to
// it for every applet `busybox --list` names, as the upstream busybox image has them.
func (b *builder) busyboxEntries() ([]entry, error) {
	if !fileExists(hostBusybox) {
		return nil, fmt.Errorf("%s is missing: install busybox-static (tools/prereqs.sh)", hostBusybox)
	}
	if dynamic, err := hasInterpreter(hostBusybox); err != nil {
		return nil, fmt.Errorf("read %s: %w", hostBusybox, err)
	} else if dynamic {
		return nil, fmt.Errorf("%s is not a static binary: install busybox-static, not busybox", hostBusybox)
	}
	out, err := b.output(hostBusybox, "--list")
	if err != nil {
		return nil, err
	}
	entries := []entry{file("/bin/busybox", 0o755, resolve(hostBusybox))}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" || strings.Contains(applet, "/") {
			continue
		}
		entries = append(entries, symlink("/bin/"+applet, "busybox"))
	}
	return entries, nil
}

// hasInterpreter reports whether an ELF binary names a dynamic loader (PT_INTERP).
func hasInterpreter(bin string) (bool, error) {
	f, err := elf.Open(bin)
	if err != nil {
		return false, err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return true, nil
		}
	}
	return false, nil
}

// compilePause compiles build/pause/linux/pause.c of Kubernetes' KubernetesVersion tree as
// its build/pause/Makefile does (CFLAGS = -Os -Wall -Werror -static -DVERSION=v$(TAG)-$(REV),
// then strip), with "taskevents" for the git revision, once into the cache directory.
func (b *builder) compilePause() (string, error) {
	version := "v" + PauseVersion + "-taskevents"
	out := filepath.Join(b.cacheDir, "pause-"+PauseVersion, "pause")
	if got, err := b.output(out, "-v"); err == nil && strings.TrimSpace(string(got)) == "pause.c "+version {
		return out, nil
	}
	dl, err := b.runIn("", "go", "mod", "download", "-json", "k8s.io/kubernetes@"+KubernetesVersion)
	if err != nil {
		return "", fmt.Errorf("the Kubernetes source for pause.c: %w", err)
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(dl, &mod); err != nil || mod.Dir == "" {
		return "", fmt.Errorf("go mod download k8s.io/kubernetes@%s: %w %s", KubernetesVersion, err, mod.Error)
	}
	src := filepath.Join(mod.Dir, "build", "pause", "linux", "pause.c")
	if err := checkPauseTag(filepath.Join(mod.Dir, "build", "pause", "Makefile")); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(filepath.Dir(out), ".pause-*")
	if err != nil {
		return "", err
	}
	f.Close()
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := b.output("gcc", "-Os", "-Wall", "-Werror", "-static", "-DVERSION="+version, "-o", tmp, src); err != nil {
		return "", fmt.Errorf("compiling pause (gcc and libc6-dev are needed): %w", err)
	}
	if _, err := b.output("strip", tmp); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", err
	}
	got, err := b.output(out, "-v")
	if err != nil {
		return "", fmt.Errorf("compiled pause -v: %w", err)
	}
	if strings.TrimSpace(string(got)) != "pause.c "+version {
		return "", fmt.Errorf("compiled pause -v says %q, want pause.c %s", got, version)
	}
	return out, nil
}

// checkPauseTag fails unless the Makefile next to pause.c builds PauseVersion.
func checkPauseTag(makefile string) error {
	b, err := os.ReadFile(makefile)
	if err != nil {
		return err
	}
	m := regexp.MustCompile(`(?m)^TAG \?= (\S+)$`).FindSubmatch(b)
	if m == nil || string(m[1]) != PauseVersion {
		return fmt.Errorf("%s: TAG is not %s", makefile, PauseVersion)
	}
	return nil
}

// runIn runs a command in dir ("" is a fresh temporary directory, outside any module) with
// the workspace off.
func (b *builder) runIn(dir string, args ...string) ([]byte, error) {
	if dir == "" {
		d, err := os.MkdirTemp("", "images-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	cmd := execCommand(b.ctx, args...)
	cmd.Dir = dir
	cmd.Env = append(cmd.Env, "GOWORK=off")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// checkVersions fails unless every binary is the version its image's ref names: the Go
// binaries by the module versions compiled into them, Debian's by their --version.
func (in Inputs) checkVersions(ctx context.Context) error {
	goBins := map[string][2]string{in.Daprd: {"github.com/dapr/dapr", "v" + DaprVersion},
		in.CoreDNS: {"github.com/coredns/coredns", "v" + CoreDNSVersion}}
	for _, c := range DaprControlPlane {
		goBins[filepath.Join(in.DaprControlPlaneDir, c)] = [2]string{"github.com/dapr/dapr", "v" + DaprVersion}
	}
	for bin, want := range goBins {
		got, err := goModuleVersion(bin, want[0])
		if err != nil {
			return err
		}
		if got != want[1] {
			return fmt.Errorf("%s is built from %s %s, want %s", bin, want[0], got, want[1])
		}
	}
	for _, c := range []struct{ bin, arg, re, want string }{
		{hostRedisServer, "--version", `v=(\S+)`, RedisVersion},
		{hostBusybox, "--help", `BusyBox v(\S+)`, BusyboxVersion},
	} {
		if !fileExists(c.bin) {
			return fmt.Errorf("%s is missing (see tools/prereqs.sh)", c.bin)
		}
		// busybox --help prints the version first; both exit 0.
		out, err := commandOutput(ctx, c.bin, c.arg)
		if err != nil {
			return err
		}
		m := regexp.MustCompile(c.re).FindSubmatch(out)
		if m == nil || string(m[1]) != c.want {
			return fmt.Errorf("%s %s: want version %s, got %q", c.bin, c.arg, c.want, firstLine(out))
		}
	}
	return nil
}

// goModuleVersion is the version of module mod a Go binary was built from: its main module
// or one of its dependencies.
func goModuleVersion(bin, mod string) (string, error) {
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		return "", fmt.Errorf("%s: %w", bin, err)
	}
	if bi.Main.Path == mod {
		return bi.Main.Version, nil
	}
	for _, d := range bi.Deps {
		if d.Path == mod {
			if d.Replace != nil {
				return d.Replace.Version, nil
			}
			return d.Version, nil
		}
	}
	return "", fmt.Errorf("%s is not built from %s", bin, mod)
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	return s
}
