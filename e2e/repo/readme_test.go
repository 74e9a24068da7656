package repo

// The README and the pages in docs/ are the user's map: every make target, environment
// variable, chart value and repository path they name in backticks must exist, their links
// and anchors must resolve, and the broker diff must match the files, so that changing one
// without the docs fails here rather than misleading a user.

import (
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/taskevents/taskevents/e2e/internal/helmchart"
	"github.com/taskevents/taskevents/e2e/internal/suite"
	"gopkg.in/yaml.v3"
)

var (
	codeSpan      = regexp.MustCompile("`([^`\n]+)`")
	makeTarget    = regexp.MustCompile(`\bmake ([a-z][a-z0-9-]*)`)
	envName       = regexp.MustCompile(`^([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|[A-Z]{4,})(=|$)`)
	valuesPath    = regexp.MustCompile(`^[a-z][A-Za-z0-9]*(\.[A-Za-z0-9]+)+$`)
	repoPath      = regexp.MustCompile(`^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.*-]*)+$`)
	upperWord     = regexp.MustCompile(`\b[A-Z][A-Z0-9_]{2,}\b`)
	upperFamily   = regexp.MustCompile(`\b[A-Z][A-Z0-9_]{2,}_\*`)
	targetInMake  = regexp.MustCompile(`(?m)^([a-z][a-z0-9-]*):`)
	componentType = regexp.MustCompile(`(?m)^\s*type:\s*([a-z0-9.]+)\s*$`)
)

// userDocs returns README.md and every page in docs/, by path relative to the root.
func userDocs(t *testing.T) map[string]string {
	t.Helper()
	pages, err := filepath.Glob(filepath.Join(suite.Root, "docs", "*.md"))
	if err != nil || len(pages) == 0 {
		t.Fatalf("docs/*.md: %d pages (%v)", len(pages), err)
	}
	docs := map[string]string{"README.md": string(suite.MustRead(t, filepath.Join(suite.Root, "README.md")))}
	for _, p := range pages {
		docs["docs/"+filepath.Base(p)] = string(suite.MustRead(t, p))
	}
	return docs
}

func TestReadmeNamesExist(t *testing.T) {
	type span struct{ file, text string }
	var spans []span
	docs := userDocs(t)
	for _, file := range slices.Sorted(maps.Keys(docs)) {
		for _, m := range codeSpan.FindAllStringSubmatch(docs[file], -1) {
			spans = append(spans, span{file, m[1]})
		}
	}
	if len(spans) < 100 {
		t.Fatalf("found only %d code spans in README.md and docs/; the check would prove nothing", len(spans))
	}

	makefile := string(suite.MustRead(t, filepath.Join(suite.Root, "Makefile")))
	targets := map[string]bool{}
	for _, m := range targetInMake.FindAllStringSubmatch(makefile, -1) {
		targets[m[1]] = true
	}
	known := knownUpperWords(t)
	values := chartValues(t)
	// A Dapr component type (pubsub.aws.snssqs) reads like a chart value under pubsub.
	componentTypes := map[string]bool{}
	for _, m := range componentType.FindAllStringSubmatch(string(mustReadAll(t, filepath.Join(suite.Root, "components", "*.yaml"))), -1) {
		componentTypes[m[1]] = true
	}

	var checked [4]int
	for _, s := range spans {
		file, span := s.file, s.text
		for _, m := range makeTarget.FindAllStringSubmatch(span, -1) {
			checked[0]++
			if !targets[m[1]] {
				t.Errorf("%s names `make %s`, which the Makefile does not define", file, m[1])
			}
		}
		for _, word := range strings.Fields(span) {
			if m := envName.FindStringSubmatch(word); m != nil && !strings.HasPrefix(m[1], "ERR_") {
				checked[1]++
				if !knownName(known, m[1]) {
					t.Errorf("%s names %s (in `%s`), which no app config, Makefile, script or harness reads", file, m[1], span)
				}
			}
		}
		if valuesPath.MatchString(span) && values.hasTop(span) && !componentTypes[span] {
			checked[2]++
			if !values.has(span) {
				t.Errorf("%s names chart value `%s`, which values.yaml does not have", file, span)
			}
		}
		if p, ok := inRepo(span); ok {
			checked[3]++
			if matches, _ := filepath.Glob(filepath.Join(suite.Root, p)); len(matches) == 0 {
				t.Errorf("%s names `%s`, which is not in the repository", file, span)
			}
		}
	}
	for i, what := range []string{"make targets", "environment variables", "chart values", "paths"} {
		if checked[i] < 3 {
			t.Errorf("checked only %d %s in README.md and docs/; the patterns have drifted from how they write them", checked[i], what)
		}
	}
	t.Logf("checked %d make targets, %d environment variables, %d chart values, %d paths", checked[0], checked[1], checked[2], checked[3])
}

// knownUpperWords is every upper-case identifier the project's code, Makefile, scripts and
// chart mention, and every family they name with a star (OTEL_EXPORTER_OTLP_*, read by the
// OpenTelemetry SDK itself): an environment variable the docs name must be one of them.
func knownUpperWords(t *testing.T) map[string]bool {
	t.Helper()
	known := map[string]bool{}
	for _, dir := range []string{"publisher", "worker", "kit", "e2e", "tools", "charts", "components", "subscriptions"} {
		err := filepath.WalkDir(filepath.Join(suite.Root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") {
					return filepath.SkipDir
				}
				return nil
			}
			ext := filepath.Ext(path)
			if ext != ".go" && ext != ".sh" && ext != ".yaml" && ext != ".tpl" && ext != ".txt" && ext != ".py" {
				return nil
			}
			if path == filepath.Join(suite.Root, "e2e", "repo", "readme_test.go") {
				return nil // this file lists none on purpose
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, w := range upperWord.FindAllString(string(raw), -1) {
				known[w] = true
			}
			for _, w := range upperFamily.FindAllString(string(raw), -1) {
				known[w] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range upperWord.FindAllString(string(suite.MustRead(t, filepath.Join(suite.Root, "Makefile"))), -1) {
		known[w] = true
	}
	return known
}

// knownName reports whether name is a known word or belongs to a known family (NAME_*).
func knownName(known map[string]bool, name string) bool {
	if known[name] {
		return true
	}
	for i := strings.LastIndex(name, "_"); i > 0; i = strings.LastIndex(name[:i], "_") {
		if known[name[:i+1]+"*"] {
			return true
		}
	}
	return false
}

// inRepo reports whether span looks like a path inside the repository, and which.
// Paths under the chart (ci/…) are written relative to it.
func inRepo(span string) (string, bool) {
	if !repoPath.MatchString(span) || strings.Contains(span, "://") {
		return "", false
	}
	first, _, _ := strings.Cut(span, "/")
	switch first {
	case "publisher", "worker", "kit", "e2e", "tools", "charts", "components", "subscriptions", "docs", "bin":
		if first == "bin" {
			return "", false // built, not committed
		}
		return strings.TrimSuffix(span, "/"), true
	case "ci", "templates":
		return filepath.Join("charts", "taskevents", strings.TrimSuffix(span, "/")), true
	}
	return "", false
}

// mustReadAll concatenates the files pattern matches.
func mustReadAll(t *testing.T, pattern string) []byte {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		t.Fatalf("%s: %d files (%v)", pattern, len(files), err)
	}
	var all []byte
	for _, f := range files {
		all = append(append(all, suite.MustRead(t, f)...), '\n')
	}
	return all
}

type valuesTree map[string]any

func chartValues(t *testing.T) valuesTree {
	t.Helper()
	// A plain map: into a named map type, yaml.v3 decodes the nested maps as that type too.
	var v map[string]any
	if err := yaml.Unmarshal(suite.MustRead(t, filepath.Join(helmchart.Dir(), "values.yaml")), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func (v valuesTree) hasTop(path string) bool {
	first, _, _ := strings.Cut(path, ".")
	_, ok := v[first]
	return ok
}

func (v valuesTree) has(path string) bool {
	var cur any = map[string]any(v)
	for _, key := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		if cur, ok = m[key]; !ok {
			return false
		}
	}
	return true
}

var (
	mdHeading = regexp.MustCompile(`^#{1,6}\s+(.+?)\s*#*\s*$`)
	mdLink    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	notInSlug = regexp.MustCompile(`[^\p{L}\p{N}\s_-]`)
)

// TestReadmeLinksResolve holds the links of the README and of the pages in docs/: every
// relative link names a file or directory in the repository, and every anchor (#section, in
// the same page or in another markdown file) is a heading's GitHub slug there. Code blocks
// are skipped: a "# comment" in YAML is not a heading.
func TestReadmeLinksResolve(t *testing.T) {
	docs := userDocs(t)
	anchorsOf := map[string]map[string]bool{} // by path relative to the root
	linksOf := map[string][]string{}
	var nAnchors, nLinks int
	for file, text := range docs {
		anchorsOf[file], linksOf[file] = readmeAnchorsAndLinks(text)
		nAnchors += len(anchorsOf[file])
		nLinks += len(linksOf[file])
	}
	if nAnchors < 20 || nLinks < 20 {
		t.Fatalf("found %d headings and %d links in README.md and docs/; the check would prove nothing", nAnchors, nLinks)
	}
	for _, file := range slices.Sorted(maps.Keys(linksOf)) {
		for _, link := range linksOf[file] {
			if strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") {
				continue
			}
			path, anchor, _ := strings.Cut(link, "#")
			target := file
			if path != "" {
				target = filepath.ToSlash(filepath.Join(filepath.Dir(file), filepath.FromSlash(path)))
				if _, err := os.Stat(filepath.Join(suite.Root, filepath.FromSlash(target))); err != nil {
					t.Errorf("%s links to %s, which is not in the repository", file, link)
					continue
				}
			}
			if anchor == "" {
				continue
			}
			anchors, ok := anchorsOf[target]
			if !ok && strings.HasSuffix(target, ".md") {
				anchors, _ = readmeAnchorsAndLinks(string(suite.MustRead(t, filepath.Join(suite.Root, filepath.FromSlash(target)))))
				anchorsOf[target] = anchors
			}
			if !anchors[anchor] {
				t.Errorf("%s links to %s, but %s has no heading with that slug", file, link, target)
			}
		}
	}
}

// TestReadmeBrokerDiff holds the "Swap brokers" diff of docs/brokers.md to components/redis.yaml and
// components/kafka.yaml without their comments: the diff's context and removed lines must
// be redis.yaml from the hunk's first line on, its context and added lines kafka.yaml. A
// setting added to either file without the diff fails here.
func TestReadmeBrokerDiff(t *testing.T) {
	readme := string(suite.MustRead(t, filepath.Join(suite.Root, "docs", "brokers.md")))
	start := strings.Index(readme, "```diff\n--- components/redis.yaml\n+++ components/kafka.yaml\n")
	if start < 0 {
		t.Fatal("docs/brokers.md has no ```diff block from components/redis.yaml to components/kafka.yaml")
	}
	block := readme[start+len("```diff\n"):]
	block = block[:strings.Index(block, "```")]
	var from, to []string
	first := 0
	for _, line := range strings.Split(strings.TrimRight(block, "\n"), "\n")[2:] {
		switch {
		case strings.HasPrefix(line, "@@"):
			if _, err := fmt.Sscanf(line, "@@ -%d", &first); err != nil {
				t.Fatalf("hunk header %q: %v", line, err)
			}
		case strings.HasPrefix(line, "-"):
			from = append(from, line[1:])
		case strings.HasPrefix(line, "+"):
			to = append(to, line[1:])
		default:
			from, to = append(from, strings.TrimPrefix(line, " ")), append(to, strings.TrimPrefix(line, " "))
		}
	}
	if first < 1 {
		t.Fatal("the README's diff has no hunk header")
	}
	for file, want := range map[string][]string{"redis.yaml": from, "kafka.yaml": to} {
		var lines []string
		for _, l := range strings.Split(strings.TrimRight(string(suite.MustRead(t, filepath.Join(suite.Root, "components", file))), "\n"), "\n") {
			if !strings.HasPrefix(strings.TrimSpace(l), "#") {
				lines = append(lines, l)
			}
		}
		if first > len(lines) {
			t.Fatalf("the README's hunk starts at line %d; components/%s has %d lines without comments", first, file, len(lines))
		}
		if got := strings.Join(lines[first-1:], "\n"); got != strings.Join(want, "\n") {
			t.Errorf("the README's diff no longer matches components/%s without comments; regenerate it:\n"+
				"  diff -u <(grep -v '^\\s*#' components/redis.yaml) <(grep -v '^\\s*#' components/kafka.yaml)\nfile:\n%s\nREADME:\n%s",
				file, got, strings.Join(want, "\n"))
		}
	}
}

// readmeAnchorsAndLinks returns the GitHub slugs of markdown's headings and the targets of
// its links, outside fenced code blocks.
func readmeAnchorsAndLinks(markdown string) (map[string]bool, []string) {
	anchors := map[string]bool{}
	seen := map[string]int{}
	var links []string
	inFence := false
	for _, line := range strings.Split(markdown, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inFence = !inFence
			continue
		}
		if inFence {
			continue
		}
		if m := mdHeading.FindStringSubmatch(line); m != nil {
			slug := githubSlug(m[1])
			if n := seen[slug]; n > 0 {
				anchors[fmt.Sprintf("%s-%d", slug, n)] = true
			} else {
				anchors[slug] = true
			}
			seen[slug]++
		}
		for _, m := range mdLink.FindAllStringSubmatch(line, -1) {
			links = append(links, m[1])
		}
	}
	return anchors, links
}

// githubSlug is the anchor GitHub gives a heading: lower case, punctuation (backticks,
// colons, slashes, parentheses) removed, each space a hyphen.
func githubSlug(heading string) string {
	slug := notInSlug.ReplaceAllString(strings.ToLower(heading), "")
	return strings.ReplaceAll(slug, " ", "-")
}

// The patterns must catch what they exist for.
func TestReadmePatterns(t *testing.T) {
	for _, c := range []struct {
		re   *regexp.Regexp
		in   string
		want bool
	}{
		{envName, "DEDUPE_LEASE", true},
		{envName, "WORKER_ENV=\"x\"", true},
		{envName, "BROKER=kafka", true},
		{envName, "RETRY", true},
		{envName, "dapr.io/app-port", false},
		{upperFamily, "OTEL_EXPORTER_OTLP_*", true},
		{upperFamily, "OTEL_EXPORTER_OTLP_TIMEOUT", false},
		{valuesPath, "tokens.app.existingSecret", true},
		{valuesPath, "dapr.io/app-port", false},
		{repoPath, "components/redis.yaml", true},
		{repoPath, "/events/todo", false},
		{mdLink, "see [Performance](#performance-make-bench).", true},
		{mdLink, "[a] (b)", false},
	} {
		if got := c.re.MatchString(c.in); got != c.want {
			t.Errorf("%s matches %q = %v, want %v", c.re, c.in, got, c.want)
		}
	}
	for heading, want := range map[string]string{
		"Performance: `make bench`":                            "performance-make-bench",
		"What the cluster test verifies, and what it does not": "what-the-cluster-test-verifies-and-what-it-does-not",
		"The publisher (`task-api`)":                           "the-publisher-task-api",
		"AWS SNS/SQS":                                          "aws-snssqs",
	} {
		if got := githubSlug(heading); got != want {
			t.Errorf("githubSlug(%q) = %q, want %q", heading, got, want)
		}
	}
}
