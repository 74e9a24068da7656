package pprofserver

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/taskevents/taskevents/kit/logging"
)

func TestIsLoopback(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:6060", true},
		{"[::1]:6060", true},
		{"localhost:6060", true},
		{":6060", false},
		{"0.0.0.0:6060", false},
		{"[::]:6060", false},
		{"10.0.0.5:6060", false},
		{"example.com:6060", false},
		{"garbage", false},
	}
	for _, tt := range tests {
		if got := IsLoopback(tt.addr); got != tt.want {
			t.Errorf("IsLoopback(%q) = %v, want %v", tt.addr, got, tt.want)
		}
	}
}

func TestServes(t *testing.T) {
	srv := newServer(zerolog.Nop())
	if srv.ReadHeaderTimeout == 0 || srv.ReadTimeout == 0 || srv.IdleTimeout == 0 || srv.ErrorLog == nil {
		t.Errorf("a timeout or the error log is unset: %+v", srv)
	}
	if srv.WriteTimeout <= 30*time.Second {
		t.Errorf("WriteTimeout %s cuts off a 30 s profile", srv.WriteTimeout)
	}
	for _, tt := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/debug/pprof/", http.StatusOK},
		{http.MethodGet, "/debug/pprof/heap?debug=1", http.StatusOK},
		{http.MethodGet, "/debug/pprof/cmdline", http.StatusOK},
		{http.MethodGet, "/debug/pprof/goroutine?debug=1", http.StatusOK},
		{http.MethodPost, "/debug/pprof/symbol", http.StatusOK},
		{http.MethodGet, "/events/todo", http.StatusNotFound},
		{http.MethodGet, "/tasks", http.StatusNotFound},
	} {
		rec := httptest.NewRecorder()
		srv.Handler.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, strings.NewReader("0x0")))
		if rec.Code != tt.want {
			t.Errorf("%s %s = %d, want %d", tt.method, tt.path, rec.Code, tt.want)
		}
		if tt.want == http.StatusOK && strings.Contains(tt.path, "heap") && !strings.Contains(rec.Body.String(), "heap profile") {
			t.Errorf("GET %s: not a heap profile", tt.path)
		}
	}
}

func TestListen(t *testing.T) {
	for _, tt := range []struct {
		addr     string
		wantWarn bool
	}{
		{"127.0.0.1:0", false},
		{"[::1]:0", false},
		{":0", true}, // every interface
	} {
		t.Run(tt.addr, func(t *testing.T) {
			logs := &logging.Buffer{}
			stop, err := Start(context.Background(), tt.addr, 5*time.Second, zerolog.New(logs))
			if err != nil {
				t.Skipf("cannot listen on %s here: %v", tt.addr, err)
			}
			addr := servingAddr(t, logs)
			resp, err := http.Get("http://" + addr + "/debug/pprof/")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine") {
				t.Errorf("GET /debug/pprof/ = %d, want 200 with the profile index", resp.StatusCode)
			}
			if got := strings.Contains(logs.String(), `"level":"warn"`); got != tt.wantWarn {
				t.Errorf("warned = %v, want %v; logs: %s", got, tt.wantWarn, logs)
			}
			stop()
			if strings.Contains(logs.String(), "did not drain") {
				t.Errorf("stop did not shut down cleanly: %s", logs)
			}
			if resp, err := http.Get("http://" + addr + "/debug/pprof/"); err == nil {
				_ = resp.Body.Close()
				t.Error("still serving after stop")
			}
		})
	}
}

// servingAddr is the address of the "serving pprof" line in logs.
func servingAddr(t *testing.T, logs *logging.Buffer) string {
	t.Helper()
	var line struct {
		Addr string `json:"pprof_addr"`
	}
	first, _, _ := strings.Cut(logs.String(), "\n")
	if err := json.Unmarshal([]byte(first), &line); err != nil || line.Addr == "" {
		t.Fatalf("no pprof_addr in %s (%v)", logs, err)
	}
	return line.Addr
}

func TestListenError(t *testing.T) {
	_, err := Start(context.Background(), "256.0.0.1:0", time.Second, zerolog.Nop())
	if err == nil || !strings.Contains(err.Error(), "PPROF_ADDR 256.0.0.1:0") {
		t.Errorf("Start on a bad address = %v, want an error naming PPROF_ADDR and the address", err)
	}
}

func TestStart(t *testing.T) {
	logs := &logging.Buffer{}
	stop, err := Start(context.Background(), "", time.Second, zerolog.New(logs))
	if err != nil || stop == nil {
		t.Fatalf("Start with PPROF_ADDR unset = %v", err)
	}
	stop()
	if logs.String() != "" {
		t.Errorf("Start with PPROF_ADDR unset logged %s", logs)
	}
	if _, err := Start(context.Background(), "256.0.0.1:0", time.Second, zerolog.Nop()); err == nil {
		t.Error("Start on a bad address succeeded")
	}

	stop, err = Start(context.Background(), "127.0.0.1:0", time.Second, zerolog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	addr := servingAddr(t, logs)
	resp, err := http.Get("http://" + addr + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	stop()
	if resp, err := http.Get("http://" + addr + "/debug/pprof/"); err == nil {
		_ = resp.Body.Close()
		t.Error("still serving after stop")
	}
}
