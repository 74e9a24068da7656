package httpapi

import (
	"testing"
	"unicode/utf8"
)

func TestTruncateKeepsUTF8Whole(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"abcdef", 3, "abc…"},
		{"aé", 2, "a…"},             // é is 2 bytes: cutting at 2 would split it
		{"日本語", 4, "日…"},            // 3-byte runes
		{"🥛🥛", 5, "🥛…"},             // a 4-byte rune
		{"\xff\xfeabc", 1, "\xff…"}, // already invalid input is cut, not repaired
	} {
		got := truncate(c.in, c.n)
		if got != c.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
		if utf8.ValidString(c.in) && !utf8.ValidString(got) {
			t.Errorf("truncate(%q, %d) = %q split a UTF-8 sequence", c.in, c.n, got)
		}
	}
}
