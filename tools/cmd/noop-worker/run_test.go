package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestRun starts the binary's run on a free port, waits for /readyz, delivers one event,
// and checks that cancel stops it cleanly.
func TestRun(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{fmt.Sprintf("APP_PORT=%d", port)}, &out) }()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)

	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready within 5s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := http.Post(base+"/events/todo", cloudEventType, strings.NewReader(singleBody))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = http.Get(base + "/count")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.TrimSpace(string(b)) != "1" {
		t.Fatalf("count %q, want 1", b)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	if !strings.Contains(out.String(), `"events":1`) {
		t.Errorf("stop log does not report the count: %s", out.String())
	}
}

func TestRunBadConfig(t *testing.T) {
	for _, environ := range [][]string{{"APP_PORT=http"}, {"APP_PORT=70000"}, {"SHUTDOWN_TIMEOUT=soon"}, {"SHUTDOWN_TIMEOUT=-1s"}} {
		err := run(context.Background(), environ, io.Discard)
		name := strings.SplitN(environ[0], "=", 2)[0]
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%v: error %v does not name %s", environ, err, name)
		}
	}
}
