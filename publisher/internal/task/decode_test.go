package task_test

import (
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/taskevents/taskevents/publisher/internal/task"
)

const maxTitle = 200

func TestDecode(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		wantTitle  string
		wantKind   task.Kind
		wantFields []task.FieldError
		wantDetail []string
	}{
		{name: "valid", body: `{"title":"Buy milk"}`, wantTitle: "Buy milk"},
		{name: "valid with whitespace around", body: " \n{ \"title\" : \"Buy milk\" }\r\n", wantTitle: "Buy milk"},
		{name: "title kept as sent", body: `{"title":"  Buy milk "}`, wantTitle: "  Buy milk "},
		{name: "escapes decoded", body: `{"title":"caf\u00e9 \"x\""}`, wantTitle: `café "x"`},
		{name: "exactly the limit in characters", body: `{"title":"` + strings.Repeat("é", maxTitle) + `"}`,
			wantTitle: strings.Repeat("é", maxTitle)},

		{name: "empty", body: ``, wantKind: task.Malformed, wantDetail: []string{"empty"}},
		{name: "whitespace only", body: " \n\t", wantKind: task.Malformed, wantDetail: []string{"empty"}},
		{name: "syntax error names line and column", body: "{\n  \"title\": x\n}", wantKind: task.Malformed,
			wantDetail: []string{"invalid character 'x'", "line 2, column 12 (byte offset 13)"}},
		{name: "truncated", body: `{"title":"a"`, wantKind: task.Malformed,
			wantDetail: []string{"ends unexpectedly", "byte offset 12"}},
		{name: "trailing comma", body: `{"title":"a",}`, wantKind: task.Malformed, wantDetail: []string{"column 14"}},
		{name: "trailing garbage", body: `{"title":"a"} x`, wantKind: task.Malformed,
			wantDetail: []string{"after the JSON object", "column 15"}},
		{name: "second object", body: `{"title":"a"}{"title":"b"}`, wantKind: task.Malformed,
			wantDetail: []string{"after the JSON object", "byte offset 13"}},
		{name: "invalid UTF-8", body: "{\"title\":\"caf\xe9\"}", wantKind: task.Malformed,
			wantDetail: []string{"not valid UTF-8", "byte offset 13"}},
		{name: "malformed array", body: `[1,`, wantKind: task.Malformed},
		{name: "number with trailing data", body: `12 x`, wantKind: task.Malformed},

		{name: "array", body: `[{"title":"a"}]`, wantKind: task.Invalid, wantDetail: []string{"must be a JSON object", "array"}},
		{name: "null body", body: `null`, wantKind: task.Invalid, wantDetail: []string{"got null"}},
		{name: "string body", body: `"Buy milk"`, wantKind: task.Invalid},
		{name: "missing title", body: `{}`, wantKind: task.Invalid,
			wantFields: []task.FieldError{{Field: "title", Detail: "is required"}}, wantDetail: []string{"title is required"}},
		{name: "null title", body: `{"title":null}`, wantKind: task.Invalid,
			wantFields: []task.FieldError{{Field: "title", Detail: "must not be null"}}},
		{name: "blank title", body: `{"title":" \t\n\u00a0"}`, wantKind: task.Invalid,
			wantFields: []task.FieldError{{Field: "title", Detail: "must not be blank"}}},
		{name: "empty title", body: `{"title":""}`, wantKind: task.Invalid,
			wantFields: []task.FieldError{{Field: "title", Detail: "must not be blank"}}},
		{name: "too long in characters", body: `{"title":"` + strings.Repeat("é", maxTitle+1) + `"}`, wantKind: task.Invalid,
			wantFields: []task.FieldError{{Field: "title", Detail: "must be at most 200 characters, got 201"}}},
		{name: "number title", body: `{"title":42}`, wantKind: task.Invalid,
			wantFields: []task.FieldError{{Field: "title", Detail: "must be a string, got a number"}}},
		{name: "object title", body: `{"title":{"text":"x"}}`, wantKind: task.Invalid,
			wantFields: []task.FieldError{{Field: "title", Detail: "must be a string, got an object"}}},
		{name: "boolean title", body: `{"title":true}`, wantKind: task.Invalid,
			wantFields: []task.FieldError{{Field: "title", Detail: "must be a string, got a boolean"}}},
		{name: "all unknown fields named in order", body: `{"title":"x","priority":1,"due":"today","priority":2}`, wantKind: task.Invalid,
			wantFields: []task.FieldError{{Field: "priority", Detail: "unknown field"}, {Field: "due", Detail: "unknown field"}},
			wantDetail: []string{`unknown fields "priority", "due"`}},
		{name: "field names are case-sensitive", body: `{"Title":"x"}`, wantKind: task.Invalid,
			wantFields: []task.FieldError{{Field: "title", Detail: "is required"}, {Field: "Title", Detail: "unknown field"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := task.Decode(strings.NewReader(tt.body), task.Options{MaxTitleLength: maxTitle})
			if tt.wantKind == 0 {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if got.Title != tt.wantTitle {
					t.Errorf("title = %q, want %q", got.Title, tt.wantTitle)
				}
				return
			}
			var de *task.Error
			if !errors.As(err, &de) {
				t.Fatalf("err = %v (%T), want *task.Error", err, err)
			}
			if de.Kind != tt.wantKind {
				t.Errorf("kind = %d, want %d (%s)", de.Kind, tt.wantKind, de.Detail)
			}
			if tt.wantFields != nil && !reflect.DeepEqual(de.Fields, tt.wantFields) {
				t.Errorf("fields = %+v, want %+v", de.Fields, tt.wantFields)
			}
			for _, s := range tt.wantDetail {
				if !strings.Contains(de.Detail, s) {
					t.Errorf("detail %q does not contain %q", de.Detail, s)
				}
			}
		})
	}
}

func TestDecodeTooLarge(t *testing.T) {
	body := `{"title":"` + strings.Repeat("a", task.MaxBodyBytes) + `"}`
	tests := []struct {
		name        string
		readerLimit int64 // http.MaxBytesReader's limit
		opts        task.Options
	}{
		{name: "own limit", readerLimit: 1 << 20, opts: task.Options{MaxTitleLength: maxTitle}},
		{name: "http.MaxBytesReader limit", readerLimit: 1024, opts: task.Options{MaxTitleLength: maxTitle, MaxBodyBytes: 1 << 20}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := http.MaxBytesReader(nil, readCloser{strings.NewReader(body)}, tt.readerLimit)
			_, err := task.Decode(r, tt.opts)
			var de *task.Error
			if !errors.As(err, &de) || de.Kind != task.TooLarge {
				t.Fatalf("err = %v, want TooLarge", err)
			}
		})
	}
}

type readCloser struct{ *strings.Reader }

func (readCloser) Close() error { return nil }
