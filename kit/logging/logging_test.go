package logging_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/taskevents/taskevents/kit/logging"
)

func TestNew(t *testing.T) {
	for _, tt := range []struct {
		level   zerolog.Level
		logged  func(zerolog.Logger)
		wantOut bool
	}{
		{zerolog.InfoLevel, func(l zerolog.Logger) { l.Info().Str("event_id", "e1").Msg("event handled") }, true},
		{zerolog.InfoLevel, func(l zerolog.Logger) { l.Debug().Msg("request") }, false},
		{zerolog.DebugLevel, func(l zerolog.Logger) { l.Debug().Msg("request") }, true},
		{zerolog.ErrorLevel, func(l zerolog.Logger) { l.Warn().Msg("retry") }, false},
	} {
		var buf logging.Buffer
		tt.logged(logging.New(&buf, tt.level))
		out := buf.String()
		if (out != "") != tt.wantOut {
			t.Errorf("at %s: logged %q, want output %v", tt.level, out, tt.wantOut)
			continue
		}
		if out == "" {
			continue
		}
		var line map[string]any
		if err := json.Unmarshal([]byte(out), &line); err != nil || strings.Count(out, "\n") != 1 {
			t.Fatalf("not one JSON line: %q (%v)", out, err)
		}
		for _, k := range []string{"level", "time", "message"} {
			if _, ok := line[k]; !ok {
				t.Errorf("line %q has no %q", out, k)
			}
		}
	}
}

func TestErrorLog(t *testing.T) {
	var buf logging.Buffer
	logging.ErrorLog(logging.New(&buf, zerolog.InfoLevel), "http").Printf("http: TLS handshake error from %s\n", "1.2.3.4:5")
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("not JSON: %q (%v)", buf.String(), err)
	}
	if line["level"] != "warn" || line["component"] != "http" || line["message"] != "http: TLS handshake error from 1.2.3.4:5" {
		t.Errorf("got %v", line)
	}
}
