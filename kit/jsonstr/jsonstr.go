// Package jsonstr appends JSON strings to byte slices, for request and
// response bodies that are a few fixed keys around strings: cheaper than
// encoding/json's reflection, and byte for byte what encoding/json writes
// with SetEscapeHTML(false) (FuzzAppend checks it).
package jsonstr

import (
	"strings"
	"unicode/utf8"
)

// Append appends s as a JSON string the way encoding/json does with
// SetEscapeHTML(false): quotes, backslashes and control characters escaped,
// invalid UTF-8 replaced by U+FFFD, and U+2028 and U+2029 escaped (they end
// lines in JavaScript).
func Append(b []byte, s string) []byte {
	const hex, controls = "0123456789abcdef", "\b\f\n\r\t"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		r, size := rune(c), 1
		if c >= utf8.RuneSelf {
			r, size = utf8.DecodeRuneInString(s[i:])
		}
		if c >= 0x20 && c != '"' && c != '\\' && (r != utf8.RuneError || size != 1) && r != '\u2028' && r != '\u2029' {
			i += size
			continue
		}
		b = append(b, s[start:i]...)
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case strings.IndexByte(controls, c) >= 0:
			b = append(b, '\\', "bfnrt"[strings.IndexByte(controls, c)])
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		case r == utf8.RuneError:
			b = append(b, `\ufffd`...)
		default: // U+2028, U+2029
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
