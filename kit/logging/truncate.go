// This file is kept identical in publisher/ and worker/ (e2e/samecode_test.go).

// Package logtext bounds text that came from outside (titles, ids, paths)
// before it goes into a log line or a problem detail, the same way in both
// apps.
package logtext

import "unicode/utf8"

// Truncate shortens s to at most n bytes without splitting a UTF-8 sequence,
// marking the cut with "…". Input that is already invalid UTF-8 is cut, not
// repaired.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
