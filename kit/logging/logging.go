// Package logging builds the app's one zerolog logger, so that both apps
// write the same JSON lines: one object per event, a level and a timestamp
// on each.
package logging

import (
	"io"
	"log"
	"strings"

	"github.com/rs/zerolog"
)

// New returns the logger run passes down: JSON to w (stdout), at level
// (LOG_LEVEL, already validated by config), with a timestamp on each line.
func New(w io.Writer, level zerolog.Level) zerolog.Logger {
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}

// ErrorLog is an http.Server's ErrorLog that sends net/http's own messages
// (TLS noise, a panicking handler, a malformed request) through logger at
// warn, tagged with the server they came from.
func ErrorLog(logger zerolog.Logger, component string) *log.Logger {
	return log.New(warnWriter{logger.With().Str("component", component).Logger()}, "", 0)
}

type warnWriter struct{ log zerolog.Logger }

func (w warnWriter) Write(p []byte) (int, error) {
	w.log.Warn().Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}
