// Package sidecartest is a fake Dapr sidecar HTTP API for tests: it records
// publish calls and answers them from a script, the way daprd would, and keeps
// a small state store that honours first-write and ttlInSeconds.
package sidecartest

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
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

	// StateStoreDown is daprd's answer to a state call when the store (Redis)
	// cannot be reached.
	StateStoreDown = Response{Status: 500, Body: `{"errorCode":"ERR_STATE_SAVE","message":"failed saving state in state store statestore: dial tcp 127.0.0.1:6379: connect: connection refused"}`}
	// NoStateStores is daprd's answer when it has loaded no state store at all.
	NoStateStores = Response{Status: 500, Body: `{"errorCode":"ERR_STATE_STORE_NOT_CONFIGURED","message":"state store is not configured"}`}
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
	// gate, when not nil, holds publish calls (single and bulk) until closed.
	gate     chan struct{}
	bulk     []BulkRequest
	bulkFunc func([]BulkEntry) Response

	outboundChecks atomic.Int32
	metadataCalls  atomic.Int32
	conns          atomic.Int32

	// The state store: stateStores are the loaded store names, state is
	// keyed by store and key, clock is the offset Advance adds to time.Now.
	stateStores []string
	state       map[string]stateEntry
	stateSaves  []StateSave
	stateFail   *Response
	stateGets   int
	clock       time.Duration
}

// StateSave is one item of a recorded POST /v1.0/state/{store} call.
type StateSave struct {
	Store    string
	Key      string
	Value    json.RawMessage
	ETag     *string
	Options  map[string]string
	Metadata map[string]string
	// Status is what the fake answered to the call that carried the item.
	Status int
}

type stateEntry struct {
	value      json.RawMessage
	version    int
	firstWrite bool
	expires    time.Time // zero: never
}

// New starts a fake sidecar, closed when the test ends.
func New(t testing.TB) *Fake {
	f := &Fake{components: []string{"pubsub"}, outbound: http.StatusNoContent,
		stateStores: []string{"statestore"}, state: map[string]stateEntry{}}
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

// SetStateStores sets the state store names the fake has loaded; a call to
// any other answers 400 ERR_STATE_STORE_NOT_FOUND, as daprd does.
func (f *Fake) SetStateStores(names ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stateStores = names
}

// FailState makes every state call answer resp (nil: work normally again).
func (f *Fake) FailState(resp *Response) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stateFail = resp
}

// Advance moves the state store's clock forward, so that keys saved with
// ttlInSeconds expire without the test waiting.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.clock += d
}

// StateSaves returns every item of every state save received so far.
func (f *Fake) StateSaves() []StateSave {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]StateSave(nil), f.stateSaves...)
}

// StateGets counts GET /v1.0/state/{store}/{key} calls.
func (f *Fake) StateGets() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stateGets
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
	case (r.Method == http.MethodPost || r.Method == http.MethodPut) && strings.HasPrefix(r.URL.Path, "/v1.0-alpha1/publish/bulk/"):
		f.bulkPublish(w, r)
	case (r.Method == http.MethodPost || r.Method == http.MethodPut) && strings.HasPrefix(r.URL.Path, "/v1.0/publish/"):
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		gate := f.gate
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
		wait(r, gate)
		if !f.authorized(w, r) {
			return
		}
		write(w, resp)
	case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/v1.0/state/"):
		if !f.authorized(w, r) {
			return
		}
		f.saveState(w, r, strings.TrimPrefix(r.URL.Path, "/v1.0/state/"))
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1.0/state/"):
		if !f.authorized(w, r) {
			return
		}
		store, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/v1.0/state/"), "/")
		f.getState(w, store, key)
	default:
		http.NotFound(w, r)
	}
}

// saveState follows daprd's onPostState and the Redis store's Set: an item
// with an ETag and first-write concurrency is refused with 409 when the key
// exists (unexpired) at another version; the ETag of a missing key is not
// checked; ttlInSeconds sets the expiry.
func (f *Fake) saveState(w http.ResponseWriter, r *http.Request, store string) {
	var items []struct {
		Key      string            `json:"key"`
		Value    json.RawMessage   `json:"value"`
		ETag     *string           `json:"etag"`
		Options  map[string]string `json:"options"`
		Metadata map[string]string `json:"metadata"`
	}
	if err := json.NewDecoder(r.Body).Decode(&items); err != nil {
		write(w, Response{Status: 400, Body: `{"errorCode":"ERR_MALFORMED_REQUEST","message":` + quote(err.Error()) + `}`})
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	status := http.StatusNoContent
	var fail Response
	switch {
	case f.stateFail != nil:
		fail = *f.stateFail
	case !slices.Contains(f.stateStores, store):
		fail = notFoundStore(store)
	}
	now := time.Now().Add(f.clock)
	for _, it := range items {
		if fail.Status != 0 {
			break
		}
		cur, exists := f.state[store+"||"+it.Key]
		if exists && !cur.expires.IsZero() && !now.Before(cur.expires) {
			exists = false
		}
		firstWrite := it.Options["concurrency"] == "first-write"
		if exists && firstWrite && it.ETag != nil && cur.firstWrite && *it.ETag != strconv.Itoa(cur.version) {
			fail = Response{Status: http.StatusConflict, Body: `{"errorCode":"ERR_STATE_SAVE","message":"failed saving state in state store ` +
				store + `: possible etag mismatch. error from state store: failed to set key ` + it.Key + `"}`}
			break
		}
		e := stateEntry{value: it.Value, version: 1, firstWrite: firstWrite || cur.firstWrite && exists}
		if exists {
			e.version = cur.version + 1
		}
		if ttl := it.Metadata["ttlInSeconds"]; ttl != "" {
			secs, err := strconv.Atoi(ttl)
			if err != nil {
				fail = Response{Status: 500, Body: `{"errorCode":"ERR_STATE_SAVE","message":"failed to parse ttl from metadata"}`}
				break
			}
			if secs > 0 { // Redis PERSISTs a key saved with ttlInSeconds <= 0
				e.expires = now.Add(time.Duration(secs) * time.Second)
			}
		}
		f.state[store+"||"+it.Key] = e
	}
	if fail.Status != 0 {
		status = fail.Status
	}
	for _, it := range items {
		f.stateSaves = append(f.stateSaves, StateSave{Store: store, Key: it.Key, Value: it.Value, ETag: it.ETag,
			Options: it.Options, Metadata: it.Metadata, Status: status})
	}
	if fail.Status != 0 {
		write(w, fail)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (f *Fake) getState(w http.ResponseWriter, store, key string) {
	f.mu.Lock()
	f.stateGets++
	fail := f.stateFail
	known := slices.Contains(f.stateStores, store)
	e, ok := f.state[store+"||"+key]
	now := time.Now().Add(f.clock)
	f.mu.Unlock()
	switch {
	case fail != nil:
		write(w, *fail)
	case !known:
		write(w, notFoundStore(store))
	case !ok || !e.expires.IsZero() && !now.Before(e.expires):
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Header().Set("ETag", strconv.Itoa(e.version))
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(e.value)
	}
}

func notFoundStore(store string) Response {
	return Response{Status: 400, Body: `{"errorCode":"ERR_STATE_STORE_NOT_FOUND","message":"state store ` + store + ` is not found"}`}
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
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

// BulkEntry is one entry of a recorded bulk publish, as daprd decodes it.
type BulkEntry struct {
	EntryID     string            `json:"entryId"`
	Event       json.RawMessage   `json:"event"`
	ContentType string            `json:"contentType"`
	Metadata    map[string]string `json:"metadata"`
}

// BulkRequest is a recorded POST /v1.0-alpha1/publish/bulk/... call.
type BulkRequest struct {
	Request
	Entries []BulkEntry
}

// ScriptBulk sets how bulk publishes are answered: fn sees the entries of
// each call. Without it every bulk publish is answered 204.
func (f *Fake) ScriptBulk(fn func([]BulkEntry) Response) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bulkFunc = fn
}

// BulkPublishes returns the bulk publish calls received so far.
func (f *Fake) BulkPublishes() []BulkRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]BulkRequest(nil), f.bulk...)
}

// Hold makes publish calls (single and bulk) wait until the returned
// release is called, so a test can let requests queue up behind them.
func (f *Fake) Hold() (release func()) {
	gate := make(chan struct{})
	f.mu.Lock()
	f.gate = gate
	f.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			if f.gate == gate {
				f.gate = nil
			}
			f.mu.Unlock()
			close(gate)
		})
	}
}

// FailEntries is daprd's answer to a bulk publish whose broker writes failed
// for the entries with these ids (the others were published).
func FailEntries(ids ...string) Response {
	type failed struct {
		EntryID string `json:"entryId"`
		Error   string `json:"error"`
	}
	body := struct {
		FailedEntries []failed `json:"failedEntries"`
		ErrorCode     string   `json:"errorCode"`
	}{FailedEntries: []failed{}, ErrorCode: "ERR_PUBSUB_PUBLISH_MESSAGE"}
	for _, id := range ids {
		body.FailedEntries = append(body.FailedEntries, failed{EntryID: id, Error: "redis streams: error from publish: connection refused"})
	}
	b, _ := json.Marshal(body)
	return Response{Status: http.StatusInternalServerError, Body: string(b)}
}

// bulkPublish follows daprd's onBulkPublish: the body is a JSON array of
// entries, each with a unique, non-empty entryId.
func (f *Fake) bulkPublish(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var entries []BulkEntry
	if err := json.Unmarshal(body, &entries); err != nil {
		write(w, Response{Status: 400, Body: `{"errorCode":"ERR_PUBSUB_EVENTS_SER","message":` + quote(err.Error()) + `}`})
		return
	}
	seen := map[string]bool{}
	for _, e := range entries {
		if e.EntryID == "" || seen[e.EntryID] {
			write(w, Response{Status: 400, Body: `{"errorCode":"ERR_PUBSUB_EVENTS_SER","message":"entryId is duplicated or not present for entry"}`})
			return
		}
		seen[e.EntryID] = true
	}
	f.mu.Lock()
	f.bulk = append(f.bulk, BulkRequest{Request: Request{
		Method: r.Method, RequestURI: r.RequestURI, Path: r.URL.EscapedPath(),
		Query: r.URL.Query(), Header: r.Header.Clone(), Body: body,
	}, Entries: entries})
	gate, fn := f.gate, f.bulkFunc
	f.mu.Unlock()
	if f.hang.Load() {
		<-r.Context().Done()
		return
	}
	wait(r, gate)
	if !f.authorized(w, r) {
		return
	}
	resp := Published
	if fn != nil {
		resp = fn(entries)
	}
	write(w, resp)
}

// wait blocks until gate is closed (nil: not at all) or the caller gives up.
func wait(r *http.Request, gate chan struct{}) {
	if gate == nil {
		return
	}
	select {
	case <-gate:
	case <-r.Context().Done():
	}
}
