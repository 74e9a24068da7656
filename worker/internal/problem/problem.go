// Package problem writes RFC 9457 problem details.
package problem

import (
	"encoding/json"
	"net/http"
)

// TypeBase prefixes the type URI of the project's own problem slugs.
const TypeBase = "https://github.com/taskevents/taskevents/blob/main/docs/problems.md#"

// Details is an RFC 9457 problem.
type Details struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail"`
	Instance string `json:"instance,omitempty"`
}

// HTTP is a plain HTTP error: type about:blank, title the status text.
func HTTP(status int, detail string) Details {
	return Details{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail}
}

// Project is one of the project's documented problems.
func Project(slug, title string, status int, detail string) Details {
	return Details{Type: TypeBase + slug, Title: title, Status: status, Detail: detail}
}

// Write sends p. Headers already set on w (such as Allow) are kept.
func Write(w http.ResponseWriter, p Details) {
	body, err := json.Marshal(p)
	if err != nil {
		// Details holds only strings and an int; this cannot happen.
		body = []byte(`{"type":"about:blank","title":"Internal Server Error","status":500}`)
		p.Status = http.StatusInternalServerError
	}
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Del("Content-Length")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_, _ = w.Write(append(body, '\n'))
}
