// Package sidecartest is an httptest stand-in for the parts of daprd's HTTP
// API the apps call: publish and bulk publish answered from a script, with
// daprd's real error bodies; the outbound health check and the metadata
// endpoint; and a state store (save, get, delete, transaction).
//
// The state store follows Dapr's Redis state store, which the project runs:
// ETags are version counters; a key saved with first-write can only be
// written again with its current ETag; ttlInSeconds expires a key; and a
// transaction applies every operation it can without rolling back the others
// (Redis MULTI/EXEC), answering 500 if one failed.
package sidecartest

import (
	"cmp"
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
	"testing"
	"time"
)

// Response is one scripted answer.
type Response struct {
	Status      int
	Body        string
	ContentType string // default application/json when Body is set
}

// Answers daprd gives, with its real error bodies.
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

// FailEntries is daprd's answer to a bulk publish whose broker writes failed
// for the entries with these ids (the others were published).
func FailEntries(ids ...string) Response {
	failed := make([]string, len(ids))
	for i, id := range ids {
		failed[i] = `{"entryId":` + marshal(id) + `,"error":"redis streams: error from publish: connection refused"}`
	}
	return Response{Status: 500, Body: `{"failedEntries":[` + strings.Join(failed, ",") + `],"errorCode":"ERR_PUBSUB_PUBLISH_MESSAGE"}`}
}

// Request is a recorded publish call.
type Request struct {
	Method     string
	RequestURI string // path and query exactly as sent
	Path       string // escaped path
	Query      url.Values
	Header     http.Header
	Body       []byte
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

// StateItem is one state write, as daprd decodes it.
type StateItem struct {
	Key      string            `json:"key"`
	Value    json.RawMessage   `json:"value"`
	ETag     *string           `json:"etag"`
	Options  map[string]string `json:"options"`
	Metadata map[string]string `json:"metadata"`
}

// StateSave is one item of a recorded POST /v1.0/state/{store} call.
type StateSave struct {
	Store string
	StateItem
	Status int // what the fake answered to the call that carried the item
}

// Fake is a running fake sidecar, safe for concurrent use. Unscripted, it
// accepts every publish, answers the outbound health check with 204, lists
// a "pubsub" component and keeps one state store, "statestore".
type Fake struct {
	*httptest.Server

	// Token, when set, makes publish, metadata and state calls without a
	// matching dapr-api-token header fail with 401, as daprd's DAPR_API_TOKEN
	// does.
	Token string

	mu         sync.Mutex
	counts     map[string]int // calls by kind, and TCP connections
	script     []Response
	bulkFunc   func([]BulkEntry) Response
	gate       chan struct{} // when not nil, publish calls wait until it is closed
	components []string
	outbound   int
	publishes  []Request
	bulk       []BulkRequest
	// The state store: now plus offset is the clock TTLs are measured with.
	state      map[stateKey]*stateEntry
	stateSaves []StateSave
	stateFail  *Response
	now        func() time.Time
	offset     time.Duration
}

type stateKey struct{ store, key string }

type stateEntry struct {
	value      json.RawMessage
	version    int
	firstWrite bool
	expires    time.Time // zero: never
}

// New starts a fake sidecar, closed when the test ends.
func New(t testing.TB) *Fake {
	f := &Fake{counts: map[string]int{}, components: []string{"pubsub"}, outbound: http.StatusNoContent,
		state: map[stateKey]*stateEntry{}, now: time.Now}
	f.Server = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			f.locked(func() { f.counts["conns"]++ })
		}
	}
	f.Start()
	t.Cleanup(f.Close)
	return f
}

// locked runs fn under the fake's lock.
func (f *Fake) locked(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}

// Script sets the answers to the next publish calls; the last one repeats.
func (f *Fake) Script(rs ...Response) { f.locked(func() { f.script = rs }) }

// ScriptBulk sets how bulk publishes are answered: fn sees the entries of
// each call. Without it every bulk publish is answered 204.
func (f *Fake) ScriptBulk(fn func([]BulkEntry) Response) { f.locked(func() { f.bulkFunc = fn }) }

// Hold makes publish calls (single and bulk) wait until the returned
// release is called or their request is cancelled, so a test can let
// requests queue up behind them, or time out.
func (f *Fake) Hold() (release func()) {
	gate := make(chan struct{})
	f.locked(func() { f.gate = gate })
	return sync.OnceFunc(func() {
		f.locked(func() {
			if f.gate == gate {
				f.gate = nil
			}
		})
		close(gate)
	})
}

// SetOutbound sets the status of GET /v1.0/healthz/outbound.
func (f *Fake) SetOutbound(status int) { f.locked(func() { f.outbound = status }) }

// SetComponents sets the component names /v1.0/metadata lists.
func (f *Fake) SetComponents(names ...string) { f.locked(func() { f.components = names }) }

// FailState makes every state call answer resp (nil: work normally again).
func (f *Fake) FailState(resp *Response) { f.locked(func() { f.stateFail = resp }) }

// SetClock replaces time.Now for TTLs.
func (f *Fake) SetClock(now func() time.Time) { f.locked(func() { f.now = now }) }

// Advance moves the state store's clock forward, so that keys saved with
// ttlInSeconds expire without the test waiting.
func (f *Fake) Advance(d time.Duration) { f.locked(func() { f.offset += d }) }

// Publishes returns the publish calls received so far.
func (f *Fake) Publishes() []Request { return snapshot(f, &f.publishes) }

// BulkPublishes returns the bulk publish calls received so far.
func (f *Fake) BulkPublishes() []BulkRequest { return snapshot(f, &f.bulk) }

// StateSaves returns every item of every state save received so far
// (transactions not included).
func (f *Fake) StateSaves() []StateSave { return snapshot(f, &f.stateSaves) }

func snapshot[T any](f *Fake, list *[]T) (out []T) {
	f.locked(func() { out = slices.Clone(*list) })
	return out
}

// OutboundChecks counts GET /v1.0/healthz/outbound calls.
func (f *Fake) OutboundChecks() int { return f.count("outbound") }

// MetadataCalls counts GET /v1.0/metadata calls.
func (f *Fake) MetadataCalls() int { return f.count("metadata") }

// StateGets counts GET /v1.0/state/{store}/{key} calls.
func (f *Fake) StateGets() int { return f.count("stateGets") }

// Connections counts the TCP connections clients opened.
func (f *Fake) Connections() int { return f.count("conns") }

func (f *Fake) count(kind string) (n int) { f.locked(func() { n = f.counts[kind] }); return n }

// Value returns the stored JSON of key in store, or nil.
func (f *Fake) Value(store, key string) (v json.RawMessage) {
	f.locked(func() {
		if e := f.live(stateKey{store, key}); e != nil {
			v = e.value
		}
	})
	return v
}

// Keys returns the live keys of store that start with prefix.
func (f *Fake) Keys(store, prefix string) (out []string) {
	f.locked(func() {
		for k := range f.state {
			if k.store == store && strings.HasPrefix(k.key, prefix) && f.live(k) != nil {
				out = append(out, k.key)
			}
		}
	})
	return out
}

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch {
	case r.Method == http.MethodGet && path == "/v1.0/healthz/outbound":
		var status int
		f.locked(func() { f.counts["outbound"]++; status = f.outbound })
		w.WriteHeader(status)
	case r.Method == http.MethodGet && path == "/v1.0/metadata":
		components := []map[string]string{}
		f.locked(func() {
			f.counts["metadata"]++
			for _, n := range f.components {
				components = append(components, map[string]string{"name": n, "type": "pubsub.redis"})
			}
		})
		if f.authorized(w, r) {
			write(w, Response{Status: http.StatusOK, Body: marshal(map[string]any{"id": "task-api", "components": components})})
		}
	case r.Method == http.MethodPost && strings.HasPrefix(path, "/v1.0-alpha1/publish/bulk/"):
		f.publish(w, r, true)
	case r.Method == http.MethodPost && strings.HasPrefix(path, "/v1.0/publish/"):
		f.publish(w, r, false)
	case strings.HasPrefix(path, "/v1.0/state/"):
		if f.authorized(w, r) {
			store, key, _ := strings.Cut(strings.TrimPrefix(path, "/v1.0/state/"), "/")
			f.stateCall(w, r, store, key)
		}
	default:
		http.NotFound(w, r)
	}
}

// publish records a single or bulk publish and answers it from the script,
// after the hold (if any). A bulk body is checked as daprd's onBulkPublish
// does: a JSON array of entries, each with a unique, non-empty entryId.
func (f *Fake) publish(w http.ResponseWriter, r *http.Request, bulk bool) {
	body, _ := io.ReadAll(r.Body)
	rec := Request{Method: r.Method, RequestURI: r.RequestURI, Path: r.URL.EscapedPath(),
		Query: r.URL.Query(), Header: r.Header.Clone(), Body: body}
	var entries []BulkEntry
	if bulk {
		err := json.Unmarshal(body, &entries)
		seen := map[string]bool{}
		for _, e := range entries {
			if e.EntryID == "" || seen[e.EntryID] {
				err = io.ErrUnexpectedEOF
			}
			seen[e.EntryID] = true
		}
		if err != nil {
			write(w, Response{Status: 400, Body: `{"errorCode":"ERR_PUBSUB_EVENTS_SER","message":"entryId is duplicated or not present for entry, or the body is not an array of entries"}`})
			return
		}
	}
	resp := Published
	var gate chan struct{}
	var bulkFunc func([]BulkEntry) Response
	f.locked(func() {
		gate, bulkFunc = f.gate, f.bulkFunc
		if bulk {
			f.bulk = append(f.bulk, BulkRequest{Request: rec, Entries: entries})
			return
		}
		f.publishes = append(f.publishes, rec)
		if len(f.script) > 0 {
			resp = f.script[0]
			if len(f.script) > 1 {
				f.script = f.script[1:]
			}
		}
	})
	if gate != nil {
		select {
		case <-gate:
		case <-r.Context().Done():
		}
	}
	if bulk && bulkFunc != nil {
		resp = bulkFunc(entries)
	}
	if f.authorized(w, r) {
		write(w, resp)
	}
}

// stateCall follows daprd's state API: a save writes its items in order and
// stops at the first the store refuses (409 for an ETag mismatch); a
// transaction applies every upsert it can, then answers 500 if one failed.
func (f *Fake) stateCall(w http.ResponseWriter, r *http.Request, store, key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Method == http.MethodGet {
		f.counts["stateGets"]++
	}
	fail := f.stateFail
	if fail == nil && store != "statestore" {
		fail = &Response{Status: 400, Body: `{"errorCode":"ERR_STATE_STORE_NOT_FOUND","message":"state store ` + store + ` is not found"}`}
	}
	switch {
	case r.Method == http.MethodPost && key == "":
		var items []StateItem
		if !decode(w, r, &items) {
			return
		}
		for _, it := range items {
			if fail == nil {
				fail = f.set(store, it, false)
			}
		}
		resp := *cmp.Or(fail, &Published)
		for _, it := range items {
			f.stateSaves = append(f.stateSaves, StateSave{Store: store, StateItem: it, Status: resp.Status})
		}
		write(w, resp)
	case fail != nil:
		write(w, *fail)
	case r.Method == http.MethodPost && key == "transaction":
		var tx struct {
			Operations []struct {
				Operation string    `json:"operation"`
				Request   StateItem `json:"request"`
			} `json:"operations"`
		}
		if !decode(w, r, &tx) {
			return
		}
		resp := Published
		for _, op := range tx.Operations {
			if op.Operation != "upsert" {
				http.Error(w, "only upsert is faked", http.StatusBadRequest)
				return
			}
			if f.set(store, op.Request, true) != nil {
				resp = Response{Status: 500, Body: `{"errorCode":"ERR_STATE_TRANSACTION","message":"error while executing state transaction: possible etag mismatch"}`}
			}
		}
		write(w, resp)
	case r.Method == http.MethodGet:
		if e := f.live(stateKey{store, key}); e != nil {
			w.Header().Set("ETag", strconv.Itoa(e.version))
			write(w, Response{Status: http.StatusOK, Body: string(e.value)})
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodDelete:
		e := f.live(stateKey{store, key})
		if m := r.Header.Get("If-Match"); e != nil && m != "" && m != strconv.Itoa(e.version) {
			write(w, Response{Status: http.StatusConflict, Body: `{"errorCode":"ERR_STATE_DELETE","message":"possible etag mismatch"}`})
			return
		}
		delete(f.state, stateKey{store, key})
		w.WriteHeader(http.StatusNoContent)
	default:
		http.NotFound(w, r)
	}
}

// decode reads r's JSON body into v, or answers 400 as daprd does.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	err := json.NewDecoder(r.Body).Decode(v)
	if err != nil {
		write(w, Response{Status: 400, Body: `{"errorCode":"ERR_MALFORMED_REQUEST","message":` + marshal(err.Error()) + `}`})
	}
	return err == nil
}

// set applies one write, or returns the store's refusal. Dapr's Redis store
// marks a key first-write only outside transactions.
func (f *Fake) set(store string, it StateItem, viaTransaction bool) *Response {
	k := stateKey{store, it.Key}
	e := f.live(k)
	if e != nil {
		want := ""
		if it.ETag != nil && it.Options["concurrency"] != "last-write" {
			want = *it.ETag
		}
		if want != strconv.Itoa(e.version) && (want != "" && want != "0" || e.firstWrite) {
			return &Response{Status: http.StatusConflict, Body: `{"errorCode":"ERR_STATE_SAVE","message":"failed saving state in state store ` +
				store + `: possible etag mismatch. error from state store: failed to set key ` + it.Key + `"}`}
		}
	}
	next := stateEntry{value: it.Value, version: 1, firstWrite: it.Options["concurrency"] == "first-write" && !viaTransaction}
	if e != nil { // a write without ttlInSeconds keeps the key's expiry, as in Redis
		next.version, next.firstWrite, next.expires = e.version+1, next.firstWrite || e.firstWrite, e.expires
	}
	if ttl := it.Metadata["ttlInSeconds"]; ttl != "" {
		secs, err := strconv.Atoi(ttl)
		if err != nil {
			return &Response{Status: 500, Body: `{"errorCode":"ERR_STATE_SAVE","message":"failed to parse ttl from metadata"}`}
		}
		next.expires = time.Time{} // Redis PERSISTs a key saved with ttlInSeconds <= 0
		if secs > 0 {
			next.expires = f.now().Add(f.offset + time.Duration(secs)*time.Second)
		}
	}
	f.state[k] = &next
	return nil
}

// live returns the unexpired entry of k, or nil; the caller holds f.mu.
func (f *Fake) live(k stateKey) *stateEntry {
	e := f.state[k]
	if e != nil && !e.expires.IsZero() && !f.now().Add(f.offset).Before(e.expires) {
		delete(f.state, k)
		return nil
	}
	return e
}

func marshal(v any) string {
	b, _ := json.Marshal(v)
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
		w.Header().Set("Content-Type", cmp.Or(resp.ContentType, "application/json"))
	}
	w.WriteHeader(resp.Status)
	_, _ = io.WriteString(w, resp.Body)
}
