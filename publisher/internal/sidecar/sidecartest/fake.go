// Package sidecartest is a fake Dapr sidecar HTTP API for tests: it records
// publish calls and answers them from a script, the way daprd would.
package sidecartest

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Response is one scripted answer to a publish call.
type Response struct {
	Status      int
	Body        string
	ContentType string // default application/json when Body is set
}

// Answers daprd gives to POST /v1.0/publish/..., with its real error bodies.
var (
	Published     = Response{Status: http.StatusNoContent}
	PublishFailed = Response{Status: 500, Body: `{"errorCode":"ERR_PUBSUB_PUBLISH_MESSAGE","message":"error when publish to topic task-events in pubsub pubsub: dial tcp 127.0.0.1:6379: connect: connection refused"}`}
	NotFound      = Response{Status: 404, Body: `{"errorCode":"ERR_PUBSUB_NOT_FOUND","message":"pubsub pubsub is not found"}`}
	Forbidden     = Response{Status: 403, Body: `{"errorCode":"ERR_PUBSUB_FORBIDDEN","message":"topic task-events is not allowed for app id task-api"}`}
	Unauthorized  = Response{Status: 401, Body: "invalid api token", ContentType: "text/plain"}
	BadMetadata   = Response{Status: 400, Body: `{"errorCode":"ERR_PUBSUB_REQUEST_METADATA","message":"failed deserializing metadata: rawPayload"}`}
)

// Request is a recorded publish call.
type Request struct {
	Method     string
	RequestURI string // path and query exactly as sent
	Path       string // escaped path
	Query      url.Values
	Header     http.Header
	Body       []byte
}

// Fake is a running fake sidecar. Its zero configuration answers every
// publish with 204 and the outbound health check with 204.
type Fake struct {
	*httptest.Server

	// Token, when set, makes publish and metadata calls without a matching
	// dapr-api-token header fail with 401, as daprd's DAPR_API_TOKEN does.
	Token string

	mu         sync.Mutex
	publishes  []Request
	script     []Response
	components []string
	outbound   int // status of GET /v1.0/healthz/outbound
	// Hang, when set, makes publish calls block until the client gives up.
	hang atomic.Bool

	outboundChecks atomic.Int32
	metadataCalls  atomic.Int32
	conns          atomic.Int32
}

// New starts a fake sidecar, closed when the test ends.
func New(t testing.TB) *Fake {
	f := &Fake{components: []string{"pubsub"}, outbound: http.StatusNoContent}
	f.Server = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			f.conns.Add(1)
		}
	}
	f.Start()
	t.Cleanup(f.Close)
	return f
}

// Script sets the answers to the next publish calls; the last one repeats.
func (f *Fake) Script(rs ...Response) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script = rs
}

// Hang makes publish calls block until the caller's request is cancelled.
func (f *Fake) Hang(on bool) { f.hang.Store(on) }

// SetOutbound sets the status of GET /v1.0/healthz/outbound.
func (f *Fake) SetOutbound(status int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.outbound = status
}

// SetComponents sets the component names /v1.0/metadata lists.
func (f *Fake) SetComponents(names ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.components = names
}

// Publishes returns the publish calls received so far.
func (f *Fake) Publishes() []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Request(nil), f.publishes...)
}

// OutboundChecks counts GET /v1.0/healthz/outbound calls.
func (f *Fake) OutboundChecks() int { return int(f.outboundChecks.Load()) }

// Connections counts the TCP connections clients opened.
func (f *Fake) Connections() int { return int(f.conns.Load()) }

// MetadataCalls counts GET /v1.0/metadata calls.
func (f *Fake) MetadataCalls() int { return int(f.metadataCalls.Load()) }

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1.0/healthz/outbound":
		f.outboundChecks.Add(1)
		f.mu.Lock()
		status := f.outbound
		f.mu.Unlock()
		w.WriteHeader(status)
	case r.Method == http.MethodGet && r.URL.Path == "/v1.0/metadata":
		f.metadataCalls.Add(1)
		if !f.authorized(w, r) {
			return
		}
		f.mu.Lock()
		type comp struct {
			Name string `json:"name"`
			Type string `json:"type"`
		}
		md := struct {
			ID         string `json:"id"`
			Components []comp `json:"components"`
		}{ID: "task-api"}
		for _, n := range f.components {
			md.Components = append(md.Components, comp{Name: n, Type: "pubsub.redis"})
		}
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(md)
	case (r.Method == http.MethodPost || r.Method == http.MethodPut) && strings.HasPrefix(r.URL.Path, "/v1.0/publish/"):
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.publishes = append(f.publishes, Request{
			Method: r.Method, RequestURI: r.RequestURI, Path: r.URL.EscapedPath(),
			Query: r.URL.Query(), Header: r.Header.Clone(), Body: body,
		})
		resp := Published
		if len(f.script) > 0 {
			resp = f.script[0]
			if len(f.script) > 1 {
				f.script = f.script[1:]
			}
		}
		f.mu.Unlock()
		if f.hang.Load() {
			<-r.Context().Done()
			return
		}
		if !f.authorized(w, r) {
			return
		}
		write(w, resp)
	default:
		http.NotFound(w, r)
	}
}

func (f *Fake) authorized(w http.ResponseWriter, r *http.Request) bool {
	if f.Token == "" || r.Header.Get("dapr-api-token") == f.Token {
		return true
	}
	write(w, Unauthorized)
	return false
}

func write(w http.ResponseWriter, resp Response) {
	if resp.Body != "" {
		ct := resp.ContentType
		if ct == "" {
			ct = "application/json"
		}
		w.Header().Set("Content-Type", ct)
	}
	w.WriteHeader(resp.Status)
	_, _ = io.WriteString(w, resp.Body)
}
