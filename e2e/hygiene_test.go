package e2e

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
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
				rel, _ := filepath.Rel(root, path)
				t.Errorf("%s:%d runs %q: scripts must not stop or disable what they did not start", rel, i+1, m)
			}
		}
	}
	check(filepath.Join(root, "Makefile"))
	err := filepath.WalkDir(filepath.Join(root, "tools"), func(path string, d fs.DirEntry, err error) error {
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
