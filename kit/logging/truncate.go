package logging

import "unicode/utf8"

// Truncate bounds text that came from outside (titles, ids, paths) before it
// goes into a log line or a problem detail: s shortened to at most n bytes
// without splitting a UTF-8 sequence, the cut marked with "…". Input that is
// already invalid UTF-8 is cut, not repaired.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
