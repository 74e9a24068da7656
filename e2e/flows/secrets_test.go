package flows

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskevents/taskevents/e2e/internal/suite"
	"github.com/taskevents/taskevents/tools/harness"
)

// secret is a token value and the strings that would betray it in a log.
type secret struct {
	name  string
	value string
}

// newSecret returns a random token, so that no log line can contain it by chance.
func newSecret(name, prefix string) secret {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return secret{name: name, value: prefix + hex.EncodeToString(b)}
}

// needles are the value and three 12-character pieces of its random part (start, middle,
// end): a log that prints a token cut short or masked only at one end still leaks it.
func (s secret) needles() []string {
	r := s.value[len(s.value)-32:]
	return []string{s.value, r[:12], r[10:22], r[20:]}
}

// TestSecrets: a run with DAPR_API_TOKEN and APP_API_TOKEN, with traffic that presents the
// right tokens, wrong ones and none, to the apps and to both sidecars. Afterwards every
// line every process of the run wrote (apps, daprd, brokers), and every file the run left
// in its directory, is searched for the tokens and for pieces of them; wrong tokens count
// too, as a wrong token is often a near miss of the real one (a typo, the last rotation).
func TestSecrets(t *testing.T) {
	dapr, app := newSecret("DAPR_API_TOKEN", "e2e-dapr-"), newSecret("APP_API_TOKEN", "e2e-app-")
	wrongDapr, wrongApp := newSecret("a wrong DAPR_API_TOKEN", "wrong-dapr-"), newSecret("a wrong APP_API_TOKEN", "wrong-app-")
	secrets := []secret{dapr, app, wrongDapr, wrongApp}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h := suite.NewHarness(t)
	sys, err := h.StartSystem(ctx, suite.StartBroker(ctx, t, h, "redis"),
		harness.SystemOptions{DaprAPIToken: dapr.value, AppAPIToken: app.value})
	if err != nil {
		t.Fatal(err)
	}
	suite.CheckSameBinaries(t, "redis", sys)
	wrk := sys.Workers[0]

	// The flow with the right tokens on both hops.
	published := suite.PublishMany(t, sys.Publisher, 20, 4)
	suite.WaitHandled(t, sys.Workers, published, 30*time.Second)

	// The worker's event route: the right token, then none and wrong ones.
	deliver := func(presented string) suite.Reply {
		t.Helper()
		var hdr map[string]string
		if presented != "" {
			hdr = map[string]string{"dapr-api-token": presented}
		}
		r, err := suite.Post(ctx, wrk.URL+suite.Contract.Route, "application/cloudevents+json",
			deliveryEnvelope("secrets-"+uuid.NewString(), uuid.NewString(), "presented "+strconv.Itoa(len(presented))), hdr)
		if err != nil {
			t.Fatalf("POST /events/todo: %v", err)
		}
		return r
	}
	if r := deliver(app.value); r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"SUCCESS"`) {
		t.Errorf("worker with the right APP_API_TOKEN = %d %s, want SUCCESS", r.Status, r.Body)
	}
	unauthorized := 0
	for _, tok := range []string{"", wrongApp.value, app.value[:len(app.value)-1], app.value + "0", strings.ToUpper(app.value)} {
		if r := deliver(tok); r.Status != http.StatusUnauthorized {
			t.Errorf("worker with dapr-api-token %q = %d %s, want 401", tok, r.Status, r.Body)
		}
		unauthorized++
	}

	// Both sidecars' API: the right token, none and a wrong one.
	for _, s := range append([]*harness.Sidecar{sys.PublisherSidecar}, sys.WorkerSidecars...) {
		for _, tc := range []struct {
			token string
			want  int
		}{{dapr.value, http.StatusOK}, {"", http.StatusUnauthorized}, {wrongDapr.value, http.StatusUnauthorized}} {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.HTTPURL+"/v1.0/metadata", nil)
			if tc.token != "" {
				req.Header.Set("dapr-api-token", tc.token)
			}
			resp, err := suite.Client.Do(req)
			if err != nil {
				t.Fatalf("%s /v1.0/metadata: %v", s.Name, err)
			}
			_ = resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("%s /v1.0/metadata with a %d-character token = %d, want %d", s.Name, len(tc.token), resp.StatusCode, tc.want)
			}
		}
	}

	// A publisher holding the wrong sidecar token: its readiness check and a publish are
	// refused, and it logs both.
	port, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	wrongPub, err := h.StartApp(ctx, "publisher-wrong-token", suite.Bins.Publisher, port, []string{
		fmt.Sprintf("DAPR_HTTP_PORT=%d", sys.PublisherSidecar.Opts.HTTPPort), "DAPR_API_TOKEN=" + wrongDapr.value})
	if err != nil {
		t.Fatal(err)
	}
	if _, r, err := suite.CreateTask(ctx, wrongPub, "wrong token"); err != nil || r.Status != http.StatusBadGateway {
		t.Errorf("publisher with a wrong DAPR_API_TOKEN = %d %s (%v), want 502", r.Status, r.Body, err)
	}

	// Stop everything, newest first as Close does, so that shutdown logging is searched
	// too. How a process ended is not this test's concern (daprd now and then exits 1
	// after its own graceful-shutdown timeout); what it logged is.
	procs := h.Processes()
	for i := len(procs) - 1; i >= 0; i-- {
		if err := procs[i].Stop(20 * time.Second); err != nil {
			t.Logf("stopping %s: %v", procs[i].Name, err)
		}
	}

	// The rejections above were logged: the search covers those paths.
	if n := countLines(wrk.Lines(), "unauthorized request"); n < unauthorized {
		t.Errorf("the worker logged %d unauthorized requests, want %d", n, unauthorized)
	}

	lines, hits := 0, 0
	report := func(where string, n int, line string) {
		for _, s := range secrets {
			for _, needle := range s.needles() {
				if strings.Contains(line, needle) {
					hits++
					t.Errorf("%s line %d holds %s (%q): %s", where, n, s.name, needle, redact(line, secrets))
					break
				}
			}
		}
	}
	for _, p := range procs {
		for i, l := range p.Lines() {
			lines++
			report(p.Name, i+1, l)
		}
	}
	// Everything the run left on disk: the log every process wrote to, generated
	// components, broker files.
	files := 0
	err = filepath.WalkDir(h.Dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		rel, _ := filepath.Rel(h.Dir, path)
		for i, l := range strings.Split(string(b), "\n") {
			report(rel, i+1, l)
		}
		return nil
	})
	if err != nil {
		t.Errorf("searching %s: %v", h.Dir, err)
	}
	names := make([]string, len(procs))
	for i, p := range procs {
		names[i] = p.Name
	}
	fmt.Printf("secrets: processes=%d (%s) lines=%d files=%d needles=%d hits=%d unauthorized_rejected=%d\n",
		len(procs), strings.Join(names, ", "), lines, files, len(secrets)*len(secrets[0].needles()), hits, unauthorized)
}

func countLines(lines []string, substr string) int {
	n := 0
	for _, l := range lines {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

// redact prints a leaking line without repeating the leak in the test output.
func redact(line string, secrets []secret) string {
	for _, s := range secrets {
		for _, needle := range s.needles() {
			line = strings.ReplaceAll(line, needle, "<"+s.name+">")
		}
	}
	if len(line) > 400 {
		line = line[:400] + "…"
	}
	return line
}

// tokenName matches identifiers that hold a token or secret.
var tokenName = regexp.MustCompile(`(?i)token|secret`)

// TestSecretsConstantTimeCompare: every place either app compares a presented token
// against its own does so in constant time. The check reads the apps' source: timing a
// comparison through the network is too noisy to fail reliably. It finds every ==, !=,
// bytes.Equal, strings.EqualFold, strings.Compare and reflect.DeepEqual whose operand is a
// token (by name, or a variable read from the dapr-api-token header), apart from checks
// for emptiness, in every package the binaries are built from (test fakes excluded), and
// requires the worker's token check to hash both sides and compare with
// subtle.ConstantTimeCompare. The publisher receives no token (it only sends
// DAPR_API_TOKEN to its sidecar), so for it the check is that it compares none.
func TestSecretsConstantTimeCompare(t *testing.T) {
	// The scan itself first, on code it must flag and code it must pass.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bad.go"), []byte(`package bad

func ok(r *http.Request, want [32]byte) bool {
	h := sha256.Sum256([]byte(r.Header.Get(TokenHeader)))
	return subtle.ConstantTimeCompare(h[:], want[:]) == 1
}
func direct(r *http.Request, apiToken string) bool { return r.Header.Get("dapr-api-token") == apiToken }
func viaVariable(r *http.Request, want string) bool {
	got := r.Header.Get(TokenHeader)
	return got != "" && bytes.Equal([]byte(got), []byte(want))
}
func byName(s *server, presented string) bool { return s.token != presented }
`), 0o600); err != nil {
		t.Fatal(err)
	}
	probe := scanTokenComparisons(t, dir)
	var flagged []string
	for _, u := range probe.unsafe {
		flagged = append(flagged, u.fn+" "+u.what)
	}
	if want := []string{"direct ==", "viaVariable bytes.Equal", "byName !="}; !slices.Equal(flagged, want) ||
		!slices.Equal(probe.constantTime, []string{"ok"}) {
		t.Fatalf("the scan of known code flagged %v and passed %v, want %v and [ok]", flagged, probe.constantTime, want)
	}

	for _, app := range []string{"publisher", "worker"} {
		r := scanTokenComparisons(t, filepath.Join(suite.Root, app))
		for _, u := range r.unsafe {
			t.Errorf("%s: %s compares a token with %s, which takes longer the more of it matches; "+
				"hash both sides with sha256 and compare with subtle.ConstantTimeCompare", u.pos, u.fn, u.what)
		}
		switch {
		case app == "worker" && len(r.constantTime) == 0:
			t.Errorf("no worker function reads the dapr-api-token header and compares its sha256 with "+
				"subtle.ConstantTimeCompare (functions reading the header: %v)", r.readsHeader)
		case len(r.readsHeader) > 0 && len(r.constantTime) == 0:
			t.Errorf("the %s reads the dapr-api-token header in %v but never compares it in constant time", app, r.readsHeader)
		}
		t.Logf("%s: functions reading the dapr-api-token header %v, of which compare in constant time %v",
			app, r.readsHeader, r.constantTime)
	}
}

type tokenScan struct {
	unsafe       []struct{ pos, fn, what string }
	readsHeader  []string // functions that read the dapr-api-token header
	constantTime []string // … and compare a sha256 with subtle.ConstantTimeCompare
}

// scanTokenComparisons parses every non-test Go file under dir, skipping test fakes and
// fixtures (sidecartest, eventtest, testdata), which are not built into the binaries.
func scanTokenComparisons(t *testing.T, dir string) tokenScan {
	t.Helper()
	var r tokenScan
	fset := token.NewFileSet()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != dir && (strings.HasSuffix(d.Name(), "test") || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			fromHeader := map[string]bool{} // variables assigned a dapr-api-token header value
			reads, ctCompare, hashes := false, false, false
			flag := func(n ast.Node, what string) {
				r.unsafe = append(r.unsafe, struct{ pos, fn, what string }{fset.Position(n.Pos()).String(), fd.Name.Name, what})
			}
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.AssignStmt:
					for i, rhs := range n.Rhs {
						if isTokenHeaderRead(rhs) && i < len(n.Lhs) {
							if id, ok := n.Lhs[i].(*ast.Ident); ok {
								fromHeader[id.Name] = true
							}
						}
					}
				case *ast.CallExpr:
					if isTokenHeaderRead(n) {
						reads = true
					}
					switch name := callName(n); name {
					case "subtle.ConstantTimeCompare":
						ctCompare = true
					case "sha256.Sum256":
						hashes = true
					case "bytes.Equal", "strings.EqualFold", "strings.Compare", "reflect.DeepEqual":
						if slices.ContainsFunc(n.Args, func(a ast.Expr) bool { return isToken(a, fromHeader) }) {
							flag(n, name)
						}
					}
				case *ast.BinaryExpr:
					if (n.Op == token.EQL || n.Op == token.NEQ) && !isEmptyString(n.X) && !isEmptyString(n.Y) &&
						(isToken(n.X, fromHeader) || isToken(n.Y, fromHeader)) {
						flag(n, n.Op.String())
					}
				}
				return true
			})
			if reads {
				r.readsHeader = append(r.readsHeader, fd.Name.Name)
				if ctCompare && hashes {
					r.constantTime = append(r.constantTime, fd.Name.Name)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// isTokenHeaderRead reports whether e is X.Get(TokenHeader) or X.Get("dapr-api-token").
func isTokenHeaderRead(e ast.Expr) bool {
	call, ok := e.(*ast.CallExpr)
	if !ok || len(call.Args) != 1 {
		return false
	}
	if sel, ok := call.Fun.(*ast.SelectorExpr); !ok || sel.Sel.Name != "Get" {
		return false
	}
	switch a := call.Args[0].(type) {
	case *ast.Ident:
		return a.Name == "TokenHeader"
	case *ast.SelectorExpr:
		return a.Sel.Name == "TokenHeader"
	case *ast.BasicLit:
		s, _ := strconv.Unquote(a.Value)
		return strings.EqualFold(s, "dapr-api-token")
	}
	return false
}

// isToken reports whether e names a token: an identifier or field whose name says so (not
// a bool such as checkToken, which is a flag), or a variable read from the token header.
func isToken(e ast.Expr, fromHeader map[string]bool) bool {
	switch e := e.(type) {
	case *ast.Ident:
		return fromHeader[e.Name] || (tokenName.MatchString(e.Name) && !strings.HasPrefix(e.Name, "check") && e.Name != "TokenHeader")
	case *ast.SelectorExpr:
		return isToken(e.Sel, nil)
	case *ast.CallExpr:
		if isTokenHeaderRead(e) {
			return true
		}
		// A conversion of a token: []byte(tok), string(tok).
		_, toBytes := e.Fun.(*ast.ArrayType)
		toString := false
		if id, ok := e.Fun.(*ast.Ident); ok && id.Name == "string" {
			toString = true
		}
		return (toBytes || toString) && len(e.Args) == 1 && isToken(e.Args[0], fromHeader)
	case *ast.ParenExpr:
		return isToken(e.X, fromHeader)
	}
	return false
}

func isEmptyString(e ast.Expr) bool {
	lit, ok := e.(*ast.BasicLit)
	return ok && lit.Kind == token.STRING && (lit.Value == `""` || lit.Value == "``")
}

func callName(c *ast.CallExpr) string {
	sel, ok := c.Fun.(*ast.SelectorExpr)
	if !ok {
		return ""
	}
	if x, ok := sel.X.(*ast.Ident); ok {
		return x.Name + "." + sel.Sel.Name
	}
	return ""
}
