package task

import (
	"reflect"
	"testing"
	"unicode/utf8"
)

// FuzzPlainTitleAgrees: whenever the fast path reads a body, the general
// decoder gives exactly the same task or the same error.
func FuzzPlainTitleAgrees(f *testing.F) {
	for _, seed := range []string{
		`{"title":"Buy milk"}`, ` { "title" : "a b" } `, "{\"title\":\"\t\"}", `{"title":""}`, `{"title":"   "}`,
		`{"title":"a\"b"}`, `{"title":"a\\"}`, `{"title":"a","title":"b"}`, `{"title":"x"}x`, `{"title":"é日本"}`,
		`{"title":"` + string(make([]byte, 30)) + `"}`, `{"title":"aaaaaaaaaaaaaaaaaaaaaaaaa"}`, "{\"title\":\"\u2028\"}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if !utf8.Valid(body) {
			return // DecodeBytes refuses it before either path
		}
		if _, ok := plainTitle(body); !ok {
			return
		}
		fastTask, fastErr := DecodeBytes(body, 20)
		slowTask, slowErr := decodeJSON(body, 20)
		if fastTask != slowTask || !reflect.DeepEqual(fastErr, slowErr) {
			t.Fatalf("body %q: fast path %+v, %v; general decoder %+v, %v", body, fastTask, fastErr, slowTask, slowErr)
		}
	})
}

func BenchmarkDecodeBytes(b *testing.B) {
	for _, bc := range []struct{ name, body string }{
		{"plain", `{"title":"Benchmark the publisher"}`},
		{"escaped", `{"title":"Benchmark \"the\" publisher"}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			body := []byte(bc.body)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DecodeBytes(body, 200); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
