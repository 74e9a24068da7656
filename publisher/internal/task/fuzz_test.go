package task_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/taskevents/taskevents/publisher/internal/task"
)

// FuzzDecodeTask: any input yields either a task that satisfies every rule, or a
// *task.Error whose kind is honest, because the handler answers it as is: TooLarge
// (413) exactly when the body is over the limit, Malformed (400) only for a body that
// is empty, not UTF-8 or not exactly one JSON value, Invalid (422) only for one
// well-formed JSON value. Nothing malformed is ever accepted (and so published).
func FuzzDecodeTask(f *testing.F) {
	for _, seed := range []string{
		`{"title":"Buy milk"}`, `{"title":""}`, `{"title":"   "}`, `{"title":null}`, `{}`, `[]`, `null`, ``,
		`{"title":1}`, `{"title":"a","x":1}`, `{"title":"a"} x`, `{"title":"a"}{}`, "{\"title\":\"\xff\"}",
		`{"title":"\ud800"}`, `{"title":"a","title":2}`, `{"Title":"a"}`, `{"title":"` + strings.Repeat("é", 201) + `"}`,
		`{"title":"` + strings.Repeat("a", 300) + `"}`, `{"a":[[[[[[{}]]]]]]}`, "\ufeff{\"title\":\"bom\"}",
		`[1,`, `12 x`, `"a" "b"`, `[{"title":"a"}] x`, "{\"title\":\"a\"}\x00", `{"title":"a\u0000b"}`,
		`1E700`, `-1e-999`, `[1E700]`, `{"title":1E700}`,
	} {
		f.Add([]byte(seed))
	}
	const limit = 256 // small, so the fuzzer reaches the size limit too
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := task.Decode(bytes.NewReader(body), task.Options{MaxTitleLength: 20, MaxBodyBytes: limit})
		if err != nil {
			var de *task.Error
			if !errors.As(err, &de) {
				t.Fatalf("error %v is %T, want *task.Error", err, err)
			}
			oneValue := utf8.Valid(body) && jsonUnmarshalStrict(body, new(json.RawMessage)) == nil
			switch de.Kind {
			case task.Malformed:
				if len(body) > limit {
					t.Fatalf("%d-byte body rejected as malformed, want TooLarge", len(body))
				}
				if oneValue {
					t.Fatalf("%q is one well-formed JSON value, but was rejected as malformed (400): %s", body, de.Detail)
				}
			case task.Invalid:
				if len(body) > limit {
					t.Fatalf("%d-byte body rejected as invalid, want TooLarge", len(body))
				}
				if !oneValue {
					t.Fatalf("%q is not one well-formed JSON value, but was rejected as invalid (422): %s", body, de.Detail)
				}
			case task.TooLarge:
				if len(body) <= limit {
					t.Fatalf("%d-byte body rejected as too large", len(body))
				}
			default:
				t.Fatalf("unknown kind %d", de.Kind)
			}
			if de.Detail == "" {
				t.Fatal("empty detail")
			}
			if de.Kind != task.Invalid && len(de.Fields) > 0 {
				t.Fatalf("field errors on a %d error", de.Kind)
			}
			return
		}
		if len(body) > limit || !utf8.Valid(body) {
			t.Fatalf("accepted a body that is too large or not UTF-8: %q", body)
		}
		if strings.TrimSpace(got.Title) == "" || utf8.RuneCountInString(got.Title) > 20 || !utf8.ValidString(got.Title) {
			t.Fatalf("accepted invalid title %q", got.Title)
		}
		// Accepted means: exactly one JSON object with only the key "title".
		var m map[string]any
		if err := jsonUnmarshalStrict(body, &m); err != nil {
			t.Fatalf("accepted %q, but it is not a single JSON object: %v", body, err)
		}
		for k := range m {
			if k != "title" {
				t.Fatalf("accepted unknown field %q in %q", k, body)
			}
		}
		if m["title"] != got.Title {
			t.Fatalf("title = %q, JSON says %q", got.Title, m["title"])
		}
	})
}
