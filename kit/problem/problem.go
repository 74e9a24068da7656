// Package problem writes RFC 9457 problem details (application/problem+json),
// byte for byte the same in both apps. Each app keeps its own problem types
// (slugs, each documented in docs/problems.md) next to the routes that use them.
package problem

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
)

// TypeBase prefixes every project-specific problem type; the slug is the
// anchor of the section in docs/problems.md that explains it.
const TypeBase = "https://github.com/taskevents/taskevents/blob/main/docs/problems.md#"

// ContentType is the media type of every error body.
const ContentType = "application/problem+json"

// Details is one problem. Extensions are added as top-level members.
type Details struct {
	Type       string
	Title      string
	Status     int
	Detail     string
	Instance   string
	Extensions map[string]any
}

// New returns a problem of a project-specific type.
func New(slug, title string, status int, detail string) Details {
	return Details{Type: TypeBase + slug, Title: title, Status: status, Detail: detail}
}

// Blank returns an "about:blank" problem, whose title is the status text.
func Blank(status int, detail string) Details {
	return Details{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail}
}

// With returns d with one more extension member.
func (d Details) With(key string, value any) Details {
	ext := make(map[string]any, len(d.Extensions)+1)
	maps.Copy(ext, d.Extensions)
	ext[key] = value
	d.Extensions = ext
	return d
}

// MarshalJSON keeps the standard members first, in RFC order, then the
// extensions sorted by name, so bodies are stable and easy to read.
func (d Details) MarshalJSON() ([]byte, error) {
	keys := []string{"type", "title", "status"}
	vals := map[string]any{"type": d.Type, "title": d.Title, "status": d.Status, "detail": d.Detail, "instance": d.Instance}
	for _, k := range []string{"detail", "instance"} {
		if vals[k] != "" {
			keys = append(keys, k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(d.Extensions)) {
		if _, std := vals[k]; !std { // an extension may not shadow a standard member
			keys, vals[k] = append(keys, k), d.Extensions[k]
		}
	}
	var b []byte
	for _, k := range keys {
		v, err := json.Marshal(vals[k])
		if err != nil {
			return nil, err
		}
		kb, _ := json.Marshal(k)
		b = append(append(append(append(b, ','), kb...), ':'), v...)
	}
	b[0] = '{' // the first member's comma
	return append(b, '}'), nil
}

// Write sends d as the response. Headers set on w beforehand (Allow,
// Retry-After, ...) are kept.
func Write(w http.ResponseWriter, d Details) {
	body, err := json.Marshal(d)
	if err != nil {
		// Only an unmarshalable extension can get here; drop the extensions
		// rather than answer without a body.
		d.Extensions = nil
		body, _ = json.Marshal(d)
	}
	h := w.Header()
	h.Set("Content-Type", ContentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Del("Content-Length")
	w.WriteHeader(d.Status)
	_, _ = w.Write(append(body, '\n'))
}
