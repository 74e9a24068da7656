// Package dockerfile does what `docker build` does with each app's Dockerfile, step by step,
// as there is no Docker engine here: it builds the context from the repository root through
// .dockerignore, replays the build stage's WORKDIR, COPY, ARG, ENV and RUN instructions in a
// scratch root (the RUN lines exactly as written, their absolute paths mapped into it), and
// returns the binary the final stage copies. The repository check and the cluster test (which
// packs that binary into its images) both build through it.
package dockerfile

import (
	"bufio"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/taskevents/taskevents/e2e/internal/suite"
)

type dockerInstruction struct {
	cmd  string // upper case: FROM, RUN, ...
	args string // the rest, continuation lines joined
	line int
}

func parseDockerfile(t *testing.T, file string) [][]dockerInstruction {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var stages [][]dockerInstruction
	var cur strings.Builder
	start, n := 0, 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if cur.Len() == 0 {
			start = n
		}
		if strings.HasSuffix(line, `\`) {
			cur.WriteString(strings.TrimSuffix(line, `\`) + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		cur.Reset()
		in := dockerInstruction{strings.ToUpper(cmd), strings.TrimSpace(args), start}
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			t.Fatalf("%s:%d: %s before FROM", file, in.line, in.cmd)
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
	}
	if len(stages) < 2 {
		t.Fatalf("%s: want a multi-stage build, got %d stage(s)", file, len(stages))
	}
	return stages
}

// Dockerignore decides, as Docker does, whether a context path is sent: the last matching
// pattern wins, a "!" pattern re-includes, and a pattern matching a directory covers what is in it.
type Dockerignore struct {
	patterns []*regexp.Regexp
	negate   []bool
}

// LoadDockerignore reads a .dockerignore, which must exist.
func LoadDockerignore(t *testing.T, file string) *Dockerignore {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("a deny-all .dockerignore must exist at the repository root: %v", err)
	}
	di := &Dockerignore{}
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		neg := strings.HasPrefix(l, "!")
		l = path.Clean(strings.TrimPrefix(strings.TrimPrefix(l, "!"), "/"))
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(l); i++ {
			switch {
			case strings.HasPrefix(l[i:], "**/"):
				re.WriteString("(.*/)?")
				i += 2
			case strings.HasPrefix(l[i:], "**"):
				re.WriteString(".*")
				i++
			case l[i] == '*':
				re.WriteString("[^/]*")
			case l[i] == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(string(l[i])))
			}
		}
		re.WriteString("$")
		di.patterns = append(di.patterns, regexp.MustCompile(re.String()))
		di.negate = append(di.negate, neg)
	}
	if len(di.patterns) == 0 || di.patterns[0].String() != "^[^/]*$" || di.negate[0] {
		t.Fatalf(".dockerignore must start by denying everything (a lone *), then re-include sources")
	}
	return di
}

// Excluded reports whether the context path rel stays out of the build context.
func (di *Dockerignore) Excluded(rel string) bool {
	excluded := false
	for i, re := range di.patterns {
		match := false
		for p := rel; p != "." && p != "/"; p = path.Dir(p) {
			if re.MatchString(p) {
				match = true
				break
			}
		}
		if match {
			excluded = !di.negate[i]
		}
	}
	return excluded
}

// BuildContext copies what .dockerignore lets through into a fresh directory.
func BuildContext(t *testing.T, di *Dockerignore) string {
	t.Helper()
	ctx := t.TempDir()
	var files int
	err := filepath.WalkDir(suite.Root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(suite.Root, p)
		if rel == "." {
			return nil
		}
		if d.IsDir() && (rel == ".git" || rel == "bin" || rel == ".run") {
			return filepath.SkipDir
		}
		if d.IsDir() || di.Excluded(filepath.ToSlash(rel)) {
			return nil
		}
		files++
		return copyFile(p, filepath.Join(ctx, rel))
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Fatal("the build context is empty")
	}
	return ctx
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	info, err := os.Stat(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, data, info.Mode().Perm())
}

// expandDockerVars expands $NAME, ${NAME} and ${NAME:-default} as the Dockerfile's shell would.
func expandDockerVars(s string, vars map[string]string) string {
	re := regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)`)
	return re.ReplaceAllStringFunc(s, func(m string) string {
		sm := re.FindStringSubmatch(m)
		name := sm[1] + sm[4]
		if v := vars[name]; v != "" || sm[2] == "" {
			return v
		}
		return sm[3]
	})
}

// shellWords splits a simple command line: whitespace-separated words with '…' and "…" quoting.
func shellWords(t *testing.T, s string) []string {
	t.Helper()
	var words []string
	var w strings.Builder
	inWord, quote := false, byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			w.WriteByte(c)
		case c == '\'' || c == '"':
			quote, inWord = c, true
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		case strings.IndexByte("&|;<>`()", c) >= 0:
			t.Fatalf("RUN %q uses the shell operator %q: keep RUN lines single commands so this test can replay them", s, c)
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	if quote != 0 {
		t.Fatalf("RUN %q: unterminated quote", s)
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

// localModules are the modules app builds from, relative to the root: its own and every
// module its go.mod replaces with a local directory (kit). Its Dockerfile builds with
// GOWORK=off, so these, not go.work, are what the build stage must copy.
func localModules(t *testing.T, app string) []string {
	t.Helper()
	cmd := exec.Command("go", "mod", "edit", "-json")
	cmd.Dir = filepath.Join(suite.Root, app)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go mod edit -json in %s: %v", app, err)
	}
	var m struct {
		Replace []struct {
			New struct{ Path, Version string }
		}
	}
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	mods := []string{app}
	for _, r := range m.Replace {
		if r.New.Version == "" && (strings.HasPrefix(r.New.Path, "./") || strings.HasPrefix(r.New.Path, "../")) {
			mods = append(mods, path.Join(app, r.New.Path))
		}
	}
	return mods
}

// Build checks app's Dockerfile and replays its build stage in a scratch root,
// as `docker build` would, returning the binary its final stage copies. The cluster test
// packs that same binary into the image it runs.
func Build(t *testing.T, ctx, app string) string {
	t.Helper()
	modules := localModules(t, app)
	dockerfile := filepath.Join(suite.Root, app, "Dockerfile")
	stages := parseDockerfile(t, dockerfile)
	build, final := stages[0], stages[len(stages)-1]

	// The final stage: distroless static, non-root, runs the binary it copies.
	if got := final[0].args; got != "gcr.io/distroless/static-debian12:nonroot" {
		t.Errorf("final stage FROM %s, want gcr.io/distroless/static-debian12:nonroot", got)
	}
	var user, entrypoint, copied string
	var copyFrom []string
	for _, in := range final[1:] {
		switch in.cmd {
		case "USER":
			user = in.args
		case "ENTRYPOINT":
			var ep []string
			if err := json.Unmarshal([]byte(in.args), &ep); err != nil || len(ep) == 0 {
				t.Errorf("line %d: ENTRYPOINT must be exec form (distroless has no shell): %s", in.line, in.args)
			} else {
				entrypoint = ep[0]
			}
		case "COPY":
			copyFrom = strings.Fields(in.args)
			if len(copyFrom) != 3 || !strings.HasPrefix(copyFrom[0], "--from=") {
				t.Errorf("line %d: the final stage should only COPY --from=<build stage> <binary> <dest>", in.line)
				copyFrom = nil
			} else {
				copied = copyFrom[2]
			}
		}
	}
	if user != "65532:65532" {
		t.Errorf("final stage USER %q, want 65532:65532", user)
	}
	if entrypoint == "" || entrypoint != copied {
		t.Errorf("ENTRYPOINT %q does not run the copied binary %q", entrypoint, copied)
	}
	from := build[0].args
	if fields := strings.Fields(from); len(fields) != 3 || !strings.EqualFold(fields[1], "AS") ||
		!regexp.MustCompile(`^golang:\d+\.\d+\.\d+(-[a-z0-9]+)?$`).MatchString(fields[0]) {
		t.Errorf("build stage FROM %q: want golang:<pinned x.y.z>[-variant] AS <name>", from)
	} else if copyFrom != nil && copyFrom[0] != "--from="+fields[2] {
		t.Errorf("final stage copies %s, the build stage is %q", copyFrom[0], fields[2])
	}

	// Replay the build stage in a scratch root.
	scratch := t.TempDir()
	workdir := "/"
	env := map[string]string{}
	args := map[string]string{}
	buildArgs := map[string]string{"TARGETOS": "linux", "TARGETARCH": runtime.GOARCH}
	var copiedBeforeDownload []string
	var ranBuild bool
	for _, in := range build[1:] {
		switch in.cmd {
		case "WORKDIR":
			workdir = path.Join(workdir, in.args)
		case "ARG":
			for _, a := range strings.Fields(in.args) {
				name, def, _ := strings.Cut(a, "=")
				if v, ok := buildArgs[name]; ok {
					def = v
				}
				args[name] = def
			}
		case "ENV":
			for _, a := range strings.Fields(in.args) {
				name, val, ok := strings.Cut(a, "=")
				if !ok {
					t.Fatalf("line %d: write ENV as NAME=value", in.line)
				}
				env[name] = val
			}
		case "COPY":
			parts := strings.Fields(in.args)
			if strings.HasPrefix(parts[0], "--") {
				t.Fatalf("line %d: COPY flags in the build stage are not replayed: %s", in.line, in.args)
			}
			srcs, dest := parts[:len(parts)-1], parts[len(parts)-1]
			if !path.IsAbs(dest) {
				dest = path.Join(workdir, dest) + map[bool]string{true: "/"}[strings.HasSuffix(dest, "/")]
			}
			for _, src := range srcs {
				if !ranBuild {
					copiedBeforeDownload = append(copiedBeforeDownload, path.Clean(src))
				}
				dockerCopy(t, ctx, src, filepath.Join(scratch, dest), strings.HasSuffix(dest, "/") || len(srcs) > 1)
			}
		case "RUN":
			words := shellWords(t, in.args)
			vars := map[string]string{}
			for k, v := range args {
				vars[k] = v
			}
			for k, v := range env {
				vars[k] = v
			}
			cmdEnv := map[string]string{}
			for k, v := range env {
				cmdEnv[k] = v
			}
			for len(words) > 0 && regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`).MatchString(words[0]) {
				name, val, _ := strings.Cut(words[0], "=")
				cmdEnv[name] = expandDockerVars(val, vars)
				words = words[1:]
			}
			if len(words) == 0 || words[0] != "go" {
				t.Fatalf("line %d: RUN %s: only go commands are expected in the build stage", in.line, in.args)
			}
			for i, w := range words {
				w = expandDockerVars(w, vars)
				if path.IsAbs(w) {
					w = filepath.Join(scratch, w)
				}
				words[i] = w
			}
			if slices.Contains(words, "build") {
				ranBuild = true
				if cmdEnv["CGO_ENABLED"] != "0" || !slices.Contains(words, "-trimpath") {
					t.Errorf("line %d: the build must run with CGO_ENABLED=0 and -trimpath: %s", in.line, in.args)
				}
			}
			runGoStep(t, filepath.Join(scratch, workdir), cmdEnv, words)
		default:
			t.Fatalf("line %d: %s is not replayed by this test", in.line, in.cmd)
		}
	}
	if !ranBuild {
		t.Fatal("the build stage has no RUN go build")
	}
	// The app builds alone: no workspace file may reach the build stage, and every module
	// it builds from has its go.mod and go.sum copied before the build.
	if env["GOWORK"] != "off" {
		t.Errorf("the build stage must set ENV GOWORK=off: the app builds from its own go.mod")
	}
	for _, f := range []string{"go.work", "go.work.sum"} {
		if slices.Contains(copiedBeforeDownload, f) {
			t.Errorf("the build stage copies %s; it builds with GOWORK=off", f)
		}
	}
	for _, m := range modules {
		for _, f := range []string{"go.mod", "go.sum"} {
			if _, err := os.Stat(filepath.Join(suite.Root, m, f)); err != nil {
				continue
			}
			if !slices.Contains(copiedBeforeDownload, path.Join(m, f)) {
				t.Errorf("the build stage does not COPY %s/%s (%s builds from %s)", m, f, app, m)
			}
		}
	}
	if copied == "" {
		t.Fatal("the final stage copies no binary")
	}
	return filepath.Join(scratch, copyFrom[1])
}

// dockerCopy copies src (a file or a directory's contents, from the context) to dest.
func dockerCopy(t *testing.T, ctx, src, dest string, destIsDir bool) {
	t.Helper()
	from := filepath.Join(ctx, src)
	info, err := os.Stat(from)
	if err != nil {
		t.Fatalf("COPY %s: not in the build context (check .dockerignore): %v", src, err)
	}
	if !info.IsDir() {
		if destIsDir {
			dest = filepath.Join(dest, filepath.Base(src))
		}
		if err := copyFile(from, dest); err != nil {
			t.Fatal(err)
		}
		return
	}
	err = filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		return copyFile(p, filepath.Join(dest, rel))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// runGoStep runs one RUN line's go command with the Dockerfile's environment on top of this
// machine's Go setup (module and build caches, proxy), without the workspace or flags the
// caller's environment may carry: the golang image sets neither.
func runGoStep(t *testing.T, dir string, env map[string]string, words []string) {
	t.Helper()
	cmd := exec.Command(words[0], words[1:]...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if name != "GOWORK" && name != "GOFLAGS" && name != "CGO_ENABLED" && name != "GOOS" && name != "GOARCH" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s (in %s, env %v): %v\n%s", strings.Join(words, " "), dir, env, err, out)
	}
	t.Logf("ran %s", strings.Join(words, " "))
}
