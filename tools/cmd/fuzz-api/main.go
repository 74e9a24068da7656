// Command fuzz-api runs schemathesis against the publisher's own OpenAPI document on the
// real system, as `make run` starts it from components/ and subscriptions/: redis-server
// (broker and the state store that keeps Idempotency-Keys), both daprd, the worker and the
// publisher. It is what `make fuzz-api` runs. It checks that no request gets a 5xx and that
// every answer matches publisher/openapi.yaml, prints one summary line, and stops everything
// it started.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/caarlos0/env/v11"
	"golang.org/x/sys/unix"

	"github.com/taskevents/taskevents/tools/harness"
)

type config struct {
	Daprd     string `env:"DAPRD,required"`
	Publisher string `env:"PUBLISHER_BIN,required"`
	Worker    string `env:"WORKER_BIN,required"` // the harness checks every binary it may run
	St        string `env:"SCHEMATHESIS,required"`
	// Checks are the schemathesis checks that fail the run: no 5xx, statuses, media types,
	// headers and bodies as documented, invalid input refused, and 405s that name the
	// allowed methods. Not positive_data_acceptance: a valid request may rightly get a 422
	// when its Idempotency-Key was used before with another task.
	Checks string `env:"FUZZ_API_CHECKS" envDefault:"not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection,unsupported_method,allow_header_conformance"`
	// Args are extra schemathesis arguments, e.g. "--max-examples 200 --seed 1".
	Args string `env:"FUZZ_API_ARGS"`
}

func main() {
	// make is the parent: if it dies, SIGTERM still reaches this process, which stops
	// everything it started (see cmd/taskevents-local).
	_ = unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0, 0, 0)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Environ(), os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "fuzz-api: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, environ []string, stdout io.Writer) (err error) {
	cfg, err := env.ParseAsWithOptions[config](env.Options{Environment: env.ToMap(environ)})
	if err != nil {
		return err
	}
	wd, _ := os.Getwd()
	root, err := harness.FindRoot(wd)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "taskevents-fuzz-api-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// The processes' output goes to a file, so schemathesis's report stays readable; its
	// tail is printed when something fails.
	logPath := filepath.Join(dir, "processes.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	h, err := harness.New(root, dir, harness.Binaries{Daprd: cfg.Daprd, Publisher: cfg.Publisher, Worker: cfg.Worker}, logFile)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := h.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("stopping processes: %w", cerr))
		}
		if err != nil {
			for _, p := range h.Processes() {
				fmt.Fprintf(stdout, "--- last lines of %s:\n%s\n", p.Name, p.Tail(20))
			}
		}
	}()

	start := time.Now()
	sys, err := startSystem(ctx, h)
	if err != nil {
		return err
	}
	publisher := sys.Publisher
	fmt.Fprintf(stdout, "fuzz-api: system up in %s (redis, both daprd, worker); fuzzing the publisher on %s\n",
		time.Since(start).Round(100*time.Millisecond), publisher.URL)
	if err := checkIdempotency(publisher.URL); err != nil {
		return fmt.Errorf("idempotency through the real daprd: %w", err)
	}

	// The document as the publisher serves it, from a file: loaded from its URL,
	// schemathesis would leave GET /openapi.yaml itself out.
	doc, err := fetchDocument(publisher.URL, filepath.Join(root, "publisher", "openapi.yaml"))
	if err != nil {
		return err
	}
	docPath := filepath.Join(dir, "openapi.yaml")
	if err := os.WriteFile(docPath, doc, 0o600); err != nil {
		return err
	}
	report := filepath.Join(dir, "report.json")
	args := append([]string{"--no-color", "run", docPath, "--url", publisher.URL,
		"--checks", cfg.Checks, "--report", "json", "--report-json-path", report,
		"--request-timeout", "15"}, strings.Fields(cfg.Args)...)
	cmd := exec.CommandContext(ctx, cfg.St, args...)
	cmd.Stdout, cmd.Stderr = stdout, stdout
	// schemathesis keeps a .schemathesis/ cache in its working directory; not in the checkout.
	cmd.Dir = dir
	// The publisher listens on loopback; a proxy from the environment must not apply.
	cmd.Env = append(os.Environ(), "NO_PROXY=127.0.0.1,localhost", "no_proxy=127.0.0.1,localhost")
	fuzzStart := time.Now()
	runErr := cmd.Run()
	took := time.Since(fuzzStart)

	cases, failures, rerr := readReport(report)
	if rerr != nil {
		return errors.Join(fmt.Errorf("schemathesis: %w", runErr), rerr)
	}
	if exited, _ := publisher.Exited(); exited {
		return fmt.Errorf("the publisher exited during the run")
	}
	fmt.Fprintf(stdout, "fuzz-api: cases=%d failures=%d duration=%s\n", cases, failures, took.Round(100*time.Millisecond))
	if runErr != nil {
		return fmt.Errorf("schemathesis found %d failure(s): %w; the processes' log was %s", failures, runErr, logPath)
	}
	if failures > 0 {
		return fmt.Errorf("schemathesis found %d failure(s); the processes' log was %s", failures, logPath)
	}
	return nil
}

// startSystem starts what `make run` starts (redis as broker and state store, both daprd,
// worker and publisher: IDEMPOTENCY_STORE is the default, the Dapr state store).
func startSystem(ctx context.Context, h *harness.Harness) (*harness.System, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	broker, err := h.StartBroker(ctx, "redis", 0)
	if err != nil {
		return nil, err
	}
	return h.StartSystem(ctx, broker, harness.SystemOptions{PublisherEnv: []string{"LOG_LEVEL=warn"}})
}

// checkIdempotency proves the state API contract against the real daprd and Redis before
// fuzzing: the first save creates the key, the second is refused (409) and reads the first
// record back, and another task under the same key is a 422.
func checkIdempotency(base string) error {
	key := fmt.Sprintf("fuzz-api-%d", time.Now().UnixNano())
	post := func(title string) (int, string, error) {
		req, _ := http.NewRequest(http.MethodPost, base+"/tasks", strings.NewReader(`{"title":"`+title+`"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		var c struct{ ID string }
		_ = json.NewDecoder(resp.Body).Decode(&c)
		return resp.StatusCode, c.ID, nil
	}
	s1, id1, err := post("first")
	if err != nil {
		return err
	}
	s2, id2, err := post("first")
	if err != nil {
		return err
	}
	s3, _, err := post("other")
	if err != nil {
		return err
	}
	if s1 != 202 || s2 != 202 || id1 == "" || id1 != id2 || s3 != 422 {
		return fmt.Errorf("answers %d %s, %d %s, %d; want 202 and 202 with one id, then 422", s1, id1, s2, id2, s3)
	}
	return nil
}

// fetchDocument GETs /openapi.yaml and requires it to be the repository's file, so what is
// fuzzed is what the binary serves and what the document in the repository says.
func fetchDocument(base, file string) ([]byte, error) {
	resp, err := http.Get(base + "/openapi.yaml")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	served, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	want, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK || !bytes.Equal(served, want) {
		return nil, fmt.Errorf("GET /openapi.yaml = %d with %d bytes, want 200 and %s (%d bytes): rebuild the publisher",
			resp.StatusCode, len(served), file, len(want))
	}
	return served, nil
}

// readReport reads schemathesis's JSON report: test cases generated, and failures found.
func readReport(path string) (cases, failures int, err error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, fmt.Errorf("read the report: %w", err)
	}
	var r struct {
		TestCases struct {
			Generated    int `json:"generated"`
			WithFailures int `json:"with_failures"`
		} `json:"test_cases"`
		Errors []struct {
			Title string `json:"title"`
			Count int    `json:"count"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return 0, 0, fmt.Errorf("decode %s: %w", path, err)
	}
	failures = r.TestCases.WithFailures
	for _, e := range r.Errors {
		failures += e.Count
	}
	return r.TestCases.Generated, failures, nil
}
