// Package task turns a POST /tasks request body into a validated Task.
//
// It walks the JSON with a token decoder instead of json.Unmarshal into a
// struct so that it can report every unknown field (not just the first), tell
// a missing title from a null one, and match "title" exactly (encoding/json
// would also accept "Title" or "TITLE").
package task

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"
)

// MaxBodyBytes caps a request body. A task is one short title; anything
// near this size is a client bug or abuse.
const MaxBodyBytes = 64 << 10

// Task is a request that passed validation. Title is kept exactly as sent.
type Task struct {
	Title string
}

// Kind says which HTTP answer an Error maps to.
type Kind int

const (
	// Malformed means the body is not one well-formed UTF-8 JSON value (400).
	Malformed Kind = iota + 1
	// TooLarge means the body exceeds the byte limit (413).
	TooLarge
	// Invalid means well-formed JSON that is not an acceptable task (422).
	Invalid
)

// FieldError describes one problem with one field of the task.
type FieldError struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

// Error is the only error type Decode returns.
type Error struct {
	Kind Kind
	// Detail is a sentence for the API client.
	Detail string
	// Fields lists per-field problems (Invalid only; may be empty when the
	// body is JSON but not an object).
	Fields []FieldError
}

func (e *Error) Error() string { return e.Detail }

// Options bound what Decode accepts.
type Options struct {
	// MaxTitleLength is the largest title in Unicode code points (not bytes,
	// not grapheme clusters).
	MaxTitleLength int
	// MaxBodyBytes caps the body; 0 means MaxBodyBytes.
	MaxBodyBytes int64
}

// Decode reads r (a request body) and returns the task, or an *Error.
// If r is an http.MaxBytesReader, its limit error is reported as TooLarge too.
func Decode(r io.Reader, opts Options) (Task, error) {
	limit := opts.MaxBodyBytes
	if limit <= 0 {
		limit = MaxBodyBytes
	}
	body, err := io.ReadAll(io.LimitReader(r, limit+1))
	switch {
	case errors.As(err, new(*http.MaxBytesError)) || int64(len(body)) > limit:
		return Task{}, &Error{Kind: TooLarge, Detail: fmt.Sprintf(
			"The request body is larger than %d bytes; a task is a JSON object with a short title.", limit)}
	case err != nil:
		return Task{}, malformed("the request body could not be read completely: " + err.Error())
	}
	return DecodeBytes(body, opts.MaxTitleLength)
}

// DecodeBytes validates an already-read body.
func DecodeBytes(body []byte, maxTitle int) (Task, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return Task{}, malformed(`the request body is empty; send a JSON object such as {"title":"Buy milk"}`)
	}
	// encoding/json silently turns invalid UTF-8 into U+FFFD; JSON text must be
	// UTF-8 (RFC 8259), so refuse it rather than publish a mangled title.
	if !utf8.Valid(body) {
		return Task{}, malformed(fmt.Sprintf("the request body is not valid UTF-8: invalid byte at %s",
			position(body, invalidUTF8Offset(body))))
	}

	if title, ok := plainTitle(body); ok {
		t, fe := checkTitle(title, maxTitle)
		if fe != nil {
			return Task{}, &Error{Kind: Invalid, Detail: invalidDetail(fe, nil), Fields: []FieldError{*fe}}
		}
		return t, nil
	}
	return decodeJSON(body, maxTitle)
}

// plainTitle reads the body almost every client sends, {"title":"…"} with
// optional whitespace and a title without escapes, without the streaming
// decoder, which costs more than the rest of the request's handling. Any
// other body (escapes, other keys, duplicates) reports !ok and goes through
// decodeJSON; FuzzPlainTitleAgrees checks that both give the same answer.
// body is valid UTF-8 already.
func plainTitle(body []byte) (string, bool) {
	rest, ok := expect(body, '{')
	if !ok {
		return "", false
	}
	rest, ok = bytes.CutPrefix(skipSpace(rest), []byte(`"title"`))
	if !ok {
		return "", false
	}
	if rest, ok = expect(rest, ':'); !ok {
		return "", false
	}
	if rest, ok = expect(rest, '"'); !ok {
		return "", false
	}
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return "", false
	}
	title := rest[:end]
	for _, c := range title {
		if c < 0x20 || c == '\\' {
			return "", false
		}
	}
	if rest, ok = expect(rest[end+1:], '}'); !ok || len(skipSpace(rest)) != 0 {
		return "", false
	}
	return string(title), true
}

// expect skips JSON whitespace and then c.
func expect(b []byte, c byte) ([]byte, bool) {
	b = skipSpace(b)
	if len(b) == 0 || b[0] != c {
		return b, false
	}
	return b[1:], true
}

func skipSpace(b []byte) []byte { return bytes.TrimLeft(b, " \t\r\n") }

// decodeJSON is the general decoder: any JSON, with a precise answer for
// every way a body can be wrong.
func decodeJSON(body []byte, maxTitle int) (Task, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	// A number is well-formed JSON whatever its size; decoded as a float64,
	// 1E700 would be reported as malformed instead of as "not an object".
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return Task{}, syntaxError(body, dec, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		// Well-formed JSON, wrong shape: that is a validation problem, but make
		// sure the whole body is well-formed first so the answer is honest.
		if err := checkRest(body, dec, tok); err != nil {
			return Task{}, err
		}
		return Task{}, &Error{Kind: Invalid, Detail: fmt.Sprintf(
			`The request body must be a JSON object such as {"title":"Buy milk"}, got %s.`, describe(skipSpace(body)))}
	}

	var (
		title    json.RawMessage
		hasTitle bool
		unknown  []string
	)
	for dec.More() {
		keyTok, err := dec.Token()
		if err != nil {
			return Task{}, syntaxError(body, dec, err)
		}
		key, _ := keyTok.(string) // the decoder only yields string keys inside an object
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return Task{}, syntaxError(body, dec, err)
		}
		if key == "title" {
			// Duplicate keys: the last one wins, as with encoding/json.
			title, hasTitle = val, true
			continue
		}
		if !slices.Contains(unknown, key) {
			unknown = append(unknown, key)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return Task{}, syntaxError(body, dec, err)
	}
	if off := trailingOffset(body, dec.InputOffset()); off >= 0 {
		return Task{}, malformed(fmt.Sprintf(
			"the request body has data after the JSON object at %s; send exactly one object", position(body, off)))
	}

	var fields []FieldError
	t, fe := validateTitle(title, hasTitle, maxTitle)
	if fe != nil {
		fields = append(fields, *fe)
	}
	for _, k := range unknown {
		fields = append(fields, FieldError{Field: k, Detail: "unknown field"})
	}
	if len(fields) > 0 {
		return Task{}, &Error{Kind: Invalid, Detail: invalidDetail(fe, unknown), Fields: fields}
	}
	return t, nil
}

func titleError(detail string) (Task, *FieldError) {
	return Task{}, &FieldError{Field: "title", Detail: detail}
}

func validateTitle(raw json.RawMessage, present bool, maxTitle int) (Task, *FieldError) {
	if !present {
		return titleError("is required")
	}
	var title string
	switch raw[0] {
	case 'n':
		return titleError("must not be null")
	case '"':
		if err := json.Unmarshal(raw, &title); err != nil {
			return titleError("must be a valid JSON string")
		}
	default:
		return titleError("must be a string, got " + describe(raw))
	}
	return checkTitle(title, maxTitle)
}

func checkTitle(title string, maxTitle int) (Task, *FieldError) {
	if strings.TrimSpace(title) == "" {
		return titleError("must not be blank")
	}
	if n := utf8.RuneCountInString(title); n > maxTitle {
		return titleError(fmt.Sprintf("must be at most %d characters, got %d", maxTitle, n))
	}
	return Task{Title: title}, nil
}

func invalidDetail(title *FieldError, unknown []string) string {
	var parts []string
	if title != nil {
		parts = append(parts, "title "+title.Detail)
	}
	if len(unknown) > 0 {
		q := make([]string, len(unknown))
		for i, k := range unknown {
			q[i] = fmt.Sprintf("%q", k)
		}
		noun := "field"
		if len(unknown) > 1 {
			noun = "fields"
		}
		parts = append(parts, fmt.Sprintf(`unknown %s %s (only "title" is accepted)`, noun, strings.Join(q, ", ")))
	}
	return "The task is invalid: " + strings.Join(parts, "; ") + "."
}

// malformed builds a Malformed error; detail is a lower-case clause, turned
// into a sentence here.
func malformed(detail string) *Error {
	return &Error{Kind: Malformed, Detail: strings.ToUpper(detail[:1]) + detail[1:] + "."}
}

// syntaxError turns a decoder error into a Malformed error that says where
// decoding stopped. The streaming decoder's offsets differ by one between its
// Token and Decode paths, so the body is re-scanned with json.Unmarshal,
// whose SyntaxError.Offset is always "bytes read including the bad one".
func syntaxError(body []byte, dec *json.Decoder, err error) *Error {
	var se *json.SyntaxError
	if uerr := json.Unmarshal(body, new(json.RawMessage)); errors.As(uerr, &se) {
		if se.Offset >= int64(len(body)) && strings.HasPrefix(se.Error(), "unexpected end") {
			return malformed(fmt.Sprintf("the request body is not valid JSON: it ends unexpectedly at %s", position(body, int64(len(body)))))
		}
		return malformed(fmt.Sprintf("the request body is not valid JSON: %s at %s", se.Error(), position(body, se.Offset-1)))
	}
	return malformed(fmt.Sprintf("the request body is not valid JSON: %s at %s", err.Error(), position(body, dec.InputOffset())))
}

// checkRest finishes reading a non-object top-level value so that malformed
// input is reported as such even when it does not start with '{'.
func checkRest(body []byte, dec *json.Decoder, first json.Token) error {
	if d, ok := first.(json.Delim); ok && d == '[' {
		for dec.More() {
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				return syntaxError(body, dec, err)
			}
		}
		if _, err := dec.Token(); err != nil {
			return syntaxError(body, dec, err)
		}
	}
	if off := trailingOffset(body, dec.InputOffset()); off >= 0 {
		return malformed(fmt.Sprintf(
			"the request body has data after the first JSON value at %s; send exactly one object", position(body, off)))
	}
	return nil
}

// trailingOffset returns the offset of the first non-whitespace byte at or
// after from, or -1 if there is none.
func trailingOffset(body []byte, from int64) int64 {
	rest := skipSpace(body[from:])
	if len(rest) == 0 {
		return -1
	}
	return int64(len(body) - len(rest))
}

// position renders a byte offset as "line L, column C (byte offset N)", with
// line and column 1-based and the column counted in bytes.
func position(body []byte, off int64) string {
	off = min(max(off, 0), int64(len(body)))
	before := body[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := off - int64(bytes.LastIndexByte(before, '\n'))
	return fmt.Sprintf("line %d, column %d (byte offset %d)", line, col, off)
}

func invalidUTF8Offset(b []byte) int64 {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return int64(i)
		}
		i += size
	}
	return int64(len(b))
}

// describe names the kind of the JSON value raw starts with.
func describe(raw []byte) string {
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}
