package profiling_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/taskevents/taskevents/publisher/internal/logbuf"
	"github.com/taskevents/taskevents/publisher/internal/profiling"
)

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
			logs := &logbuf.Buffer{}
			s, err := profiling.Listen(context.Background(), tt.addr, zerolog.New(logs))
			if err != nil {
				t.Skipf("cannot listen on %s here: %v", tt.addr, err)
			}
			resp, err := http.Get("http://" + s.Addr() + "/debug/pprof/")
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
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := s.Shutdown(ctx); err != nil {
				t.Errorf("Shutdown = %v", err)
			}
			if resp, err := http.Get("http://" + s.Addr() + "/debug/pprof/"); err == nil {
				_ = resp.Body.Close()
				t.Error("still serving after Shutdown")
			}
		})
	}
}
