package repo

// There is no Docker engine here, so this test replays each app's Dockerfile as `docker
// build` would (internal/dockerfile) and checks the binary the final stage copies is static:
// no ELF interpreter, no shared libraries, built with CGO_ENABLED=0 and -trimpath.

import (
	"debug/buildinfo"
	"debug/elf"
	"os"
	"path/filepath"
	"testing"

	"github.com/taskevents/taskevents/e2e/internal/dockerfile"
	"github.com/taskevents/taskevents/e2e/internal/suite"
)

func TestImageDockerfiles(t *testing.T) {
	di := dockerfile.LoadDockerignore(t, filepath.Join(suite.Root, ".dockerignore"))
	if !di.Excluded(".git/config") || !di.Excluded("README.md") || !di.Excluded("go.work") || di.Excluded("kit/go.mod") {
		t.Fatal(".dockerignore must send kit/ and the apps' sources, not .git, docs or go.work")
	}
	ctx := dockerfile.BuildContext(t, di)
	for _, app := range []string{"publisher", "worker"} {
		t.Run(app, func(t *testing.T) {
			checkStaticBinary(t, dockerfile.Build(t, ctx, app))
		})
	}
}

func checkStaticBinary(t *testing.T, bin string) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("the binary the final stage copies: %v", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s has an ELF interpreter (PT_INTERP): it is dynamically linked", bin)
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		t.Fatal(err)
	}
	if len(libs) > 0 {
		t.Errorf("%s needs shared libraries (DT_NEEDED): %v", bin, libs)
	}
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" || settings["GOOS"] != "linux" {
		t.Errorf("%s build settings CGO_ENABLED=%q -trimpath=%q GOOS=%q, want 0, true, linux",
			bin, settings["CGO_ENABLED"], settings["-trimpath"], settings["GOOS"])
	}
	info, _ := os.Stat(bin)
	t.Logf("%s: static ELF, %d bytes, %s, main module %s", filepath.Base(bin), info.Size(), bi.GoVersion, bi.Main.Path)
}
