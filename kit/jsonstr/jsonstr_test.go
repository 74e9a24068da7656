package jsonstr_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/taskevents/taskevents/kit/jsonstr"
)

func FuzzAppend(f *testing.F) {
	for _, s := range []string{"", "plain", `a"b\c`, "tab\tnl\ncr\r\b\f\x00\x1f\x7f", "<&>", "\u2028\u2029", "\xff\xfe", "é日本\U0001F600", "\xed\xa0\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		got := jsonstr.Append([]byte("x"), s)
		if !bytes.Equal(got, append([]byte("x"), bytes.TrimSuffix(want.Bytes(), []byte("\n"))...)) {
			t.Fatalf("Append(%q) = %s, encoding/json: %s", s, got[1:], want.Bytes())
		}
	})
}
