package logging_test

import (
	"testing"
	"unicode/utf8"

	"github.com/taskevents/taskevents/kit/logging"
)

func TestTruncateKeepsUTF8Whole(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"", 0, ""},
		{"abc", 3, "abc"},
		{"short", 10, "short"},
		{"abcd", 3, "abc…"},
		{"abcdef", 3, "abc…"},
		{"aé", 2, "a…"},             // é is 2 bytes: cutting at 2 would split it
		{"ééé", 3, "é…"},            // cutting at 3 would split the second é
		{"日本語", 4, "日…"},            // 3-byte runes
		{"🥛🥛", 5, "🥛…"},             // a 4-byte rune
		{"\xff\xfeabc", 1, "\xff…"}, // already invalid input is cut, not repaired
	} {
		got := logging.Truncate(c.in, c.n)
		if got != c.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
		if utf8.ValidString(c.in) && !utf8.ValidString(got) {
			t.Errorf("Truncate(%q, %d) = %q split a UTF-8 sequence", c.in, c.n, got)
		}
	}
}

func FuzzTruncate(f *testing.F) {
	for _, s := range []string{"", "abc", "日本語", "🥛🥛", "\xff\xfe"} {
		f.Add(s, 2)
	}
	f.Fuzz(func(t *testing.T, s string, n int) {
		if n < 0 {
			n = -n
		}
		got := logging.Truncate(s, n)
		if len(s) <= n {
			if got != s {
				t.Fatalf("Truncate(%q, %d) = %q, want it unchanged", s, n, got)
			}
			return
		}
		if len(got) > n+len("…") {
			t.Fatalf("Truncate(%q, %d) = %q is longer than %d bytes and the mark", s, n, got, n)
		}
		if utf8.ValidString(s) && !utf8.ValidString(got) {
			t.Fatalf("Truncate(%q, %d) = %q split a UTF-8 sequence", s, n, got)
		}
	})
}
