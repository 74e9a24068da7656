package pprofserver

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
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
	srv := New()
	if srv.ReadHeaderTimeout == 0 || srv.ReadTimeout == 0 || srv.IdleTimeout == 0 {
		t.Errorf("a timeout is unset: %+v", srv)
	}
	if srv.WriteTimeout <= 30*time.Second {
		t.Errorf("WriteTimeout %s cuts off a 30 s profile", srv.WriteTimeout)
	}
	for path, want := range map[string]int{
		"/debug/pprof/":                  http.StatusOK,
		"/debug/pprof/heap?debug=1":      http.StatusOK,
		"/debug/pprof/cmdline":           http.StatusOK,
		"/events/todo":                   http.StatusNotFound,
		"/debug/pprof/goroutine?debug=1": http.StatusOK,
	} {
		rec := httptest.NewRecorder()
		srv.Handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != want {
			t.Errorf("GET %s = %d, want %d", path, rec.Code, want)
		}
		if want == http.StatusOK && strings.Contains(path, "heap") && !strings.Contains(rec.Body.String(), "heap profile") {
			t.Errorf("GET %s: not a heap profile", path)
		}
	}
}
