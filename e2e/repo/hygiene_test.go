package repo

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/taskevents/taskevents/e2e/internal/suite"
)

// A developer's machine is theirs: the scripts install packages and start the project's
// own instances on free ports, but never stop, kill or disable a process or service they
// did not start (a developer's own Redis must survive make run).
func TestScriptsNeverStopOthersServices(t *testing.T) {
	var scanned int
	check := func(path string) {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		scanned++
		for i, line := range strings.Split(string(raw), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			if m := stopsOthers.FindString(line); m != "" {
				rel, _ := filepath.Rel(suite.Root, path)
				t.Errorf("%s:%d runs %q: scripts must not stop or disable what they did not start", rel, i+1, m)
			}
		}
	}
	check(filepath.Join(suite.Root, "Makefile"))
	err := filepath.WalkDir(filepath.Join(suite.Root, "tools"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".sh") {
			check(path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if scanned < 5 {
		t.Fatalf("scanned only %d files; the check would prove nothing", scanned)
	}
}

// stopsOthers matches a shell line that stops, kills or disables a process or service.
var stopsOthers = regexp.MustCompile(`\b(pkill|killall)\b|systemctl\s+(\S+\s+)*(stop|disable|mask|kill)\b|` +
	`update-rc\.d\s+\S+\s+(disable|remove)|/etc/init\.d/\S+\s+stop|\bservice\s+\S+\s+stop|` +
	`rabbitmqctl\s+(-q\s+)?stop\b|epmd\s+-kill`)

// The scan must catch what tools/prereqs.sh once did, and let through what the scripts
// legitimately run.
func TestStopsOthersMatches(t *testing.T) {
	for line, want := range map[string]bool{
		"pkill -x redis-server":                          true,
		`systemctl disable --now "$svc" >/dev/null 2>&1`: true,
		`"/etc/init.d/$svc" stop`:                        true,
		`update-rc.d "$svc" disable`:                     true,
		"rabbitmqctl -q stop":                            true,
		"epmd -kill":                                     true,
		"killall etcd":                                   true,
		`kill "$pid"`:                                    false, // its own child, by pid
		"systemctl is-active --quiet redis-server":       false,
		"apt-get install -y redis-server":                false,
	} {
		if got := stopsOthers.MatchString(line); got != want {
			t.Errorf("stopsOthers.MatchString(%q) = %v, want %v", line, got, want)
		}
	}
}

// Users see only the repository: no file may speak of the lesson the project grew from
// or cite the team's reference notes, which are not in it. Words like these were removed
// by hand more than once and one still slipped back in a test message, so every file is
// scanned.
func TestNoReferencesOutsideTheRepository(t *testing.T) {
	var scanned int
	err := filepath.WalkDir(suite.Root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "bin", "node_modules", ".venv":
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(path) {
		case ".png", ".json", ".sum":
			return nil
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		scanned++
		for i, line := range strings.Split(string(raw), "\n") {
			if m := outsideReference(line); m != "" {
				rel, _ := filepath.Rel(suite.Root, path)
				t.Errorf("%s:%d says %q: users have never seen it", rel, i+1, m)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if scanned < 100 {
		t.Fatalf("scanned only %d files; the check would prove nothing", scanned)
	}
}

// outsideWords are the lesson and the reference notes, spelled as they were once cited.
// The pattern is built from parts so that this file does not match itself.
var outsideWords = regexp.MustCompile(`(?i)\bthe seed\b('s)?|\bseed[- ]lesson|\bseed's\b|` +
	`\b(dapr-contract|user-pitfalls|perf-anchors|cluster-feasibility)` + `\.md\b`)

// outsideReference returns the first outside word in line, letting through Go's own
// fuzzing term ("the seed corpus").
func outsideReference(line string) string {
	for _, loc := range outsideWords.FindAllStringIndex(line, -1) {
		if !strings.HasPrefix(strings.ToLower(line[loc[1]:]), " corp") {
			return line[loc[0]:loc[1]]
		}
	}
	return ""
}

func TestOutsideReferenceMatches(t *testing.T) {
	for line, want := range map[string]string{
		// Each outside word is split in two so that this table does not match itself.
		`t.Fatalf("body %s is not the se` + `ed's {id}")`: "the se" + "ed's",
		"as the lesson's Se" + "ed lesson writes it":      "Se" + "ed lesson",
		"// see dapr-contract" + ".md §3":                 "dapr-contract" + ".md",
		"from user-pitfalls" + ".md":                      "user-pitfalls" + ".md",
		"including the seed corpora of the fuzz targets":  "",
		"returns a seeded generator and its seed":         "",
		"kept as regression seeds":                        "",
		"schemathesis --seed 1":                           "",
	} {
		if got := outsideReference(line); got != want {
			t.Errorf("outsideReference(%q) = %q, want %q", line, got, want)
		}
	}
}
