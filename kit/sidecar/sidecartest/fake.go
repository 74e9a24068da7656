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
	"sync/atomic"
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
	return Response{Status: http.StatusInternalServerError, Body: marshal(body)}
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

// Fake is a running fake sidecar, safe for concurrent use. Unscripted, it
// accepts every publish, answers the outbound health check with 204, lists
// a "pubsub" component and keeps one state store, "statestore".
type Fake struct {
	*httptest.Server

	// Token, when set, makes publish, metadata and state calls without a
	// matching dapr-api-token header fail with 401, as daprd's DAPR_API_TOKEN
	// does.
	Token string

	hang           atomic.Bool
	outboundChecks atomic.Int32
	metadataCalls  atomic.Int32
	conns          atomic.Int32

	mu         sync.Mutex
	publishes  []Request
	script     []Response
	bulk       []BulkRequest
	bulkFunc   func([]BulkEntry) Response
	gate       chan struct{} // when not nil, publish calls wait until it is closed
	components []string
	outbound   int

	// The state store: state is keyed by store and key; now plus offset is
	// the clock TTLs are measured with.
	stateStores []string
	state       map[string]*stateEntry
	stateSaves  []StateSave
	stateFail   *Response
	stateGets   int
	now         func() time.Time
	offset      time.Duration
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
		stateStores: []string{"statestore"}, state: map[string]*stateEntry{}, now: time.Now}
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

// Hang makes publish calls block until the caller's request is cancelled.
func (f *Fake) Hang(on bool) { f.hang.Store(on) }

// Hold makes publish calls (single and bulk) wait until the returned
// release is called, so a test can let requests queue up behind them.
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

// SetStateStores sets the state store names the fake has loaded; a call to
// any other answers 400 ERR_STATE_STORE_NOT_FOUND, as daprd does.
func (f *Fake) SetStateStores(names ...string) { f.locked(func() { f.stateStores = names }) }

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

func snapshot[T any](f *Fake, list *[]T) []T {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(*list)
}

// StateGets counts GET /v1.0/state/{store}/{key} calls.
func (f *Fake) StateGets() (n int) {
	f.locked(func() { n = f.stateGets })
	return n
}

// Value returns the stored JSON of key in store, or nil.
func (f *Fake) Value(store, key string) (v json.RawMessage) {
	f.locked(func() {
		if e := f.live(store, key); e != nil {
			v = e.value
		}
	})
	return v
}

// Keys returns the live keys of store that start with prefix.
func (f *Fake) Keys(store, prefix string) (out []string) {
	f.locked(func() {
		for k := range f.state {
			s, key, _ := strings.Cut(k, "||")
			if s == store && strings.HasPrefix(key, prefix) && f.live(s, key) != nil {
				out = append(out, key)
			}
		}
	})
	return out
}

// OutboundChecks counts GET /v1.0/healthz/outbound calls.
func (f *Fake) OutboundChecks() int { return int(f.outboundChecks.Load()) }

// MetadataCalls counts GET /v1.0/metadata calls.
func (f *Fake) MetadataCalls() int { return int(f.metadataCalls.Load()) }

// Connections counts the TCP connections clients opened.
func (f *Fake) Connections() int { return int(f.conns.Load()) }

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch {
	case r.Method == http.MethodGet && path == "/v1.0/healthz/outbound":
		f.outboundChecks.Add(1)
		var status int
		f.locked(func() { status = f.outbound })
		w.WriteHeader(status)
	case r.Method == http.MethodGet && path == "/v1.0/metadata":
		f.metadataCalls.Add(1)
		if f.authorized(w, r) {
			md := map[string]any{"id": "task-api", "components": []map[string]string{}}
			f.locked(func() {
				for _, n := range f.components {
					md["components"] = append(md["components"].([]map[string]string), map[string]string{"name": n, "type": "pubsub.redis"})
				}
			})
			write(w, Response{Status: http.StatusOK, Body: marshal(md)})
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
		switch {
		case bulk:
			f.bulk = append(f.bulk, BulkRequest{Request: rec, Entries: entries})
		default:
			f.publishes = append(f.publishes, rec)
			if len(f.script) > 0 {
				resp = f.script[0]
				if len(f.script) > 1 {
					f.script = f.script[1:]
				}
			}
		}
	})
	if f.hang.Load() {
		<-r.Context().Done()
		return
	}
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

func (f *Fake) stateCall(w http.ResponseWriter, r *http.Request, store, key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Method == http.MethodGet {
		f.stateGets++
	}
	var fail *Response
	switch {
	case f.stateFail != nil:
		fail = f.stateFail
	case !slices.Contains(f.stateStores, store):
		fail = &Response{Status: 400, Body: `{"errorCode":"ERR_STATE_STORE_NOT_FOUND","message":"state store ` + store + ` is not found"}`}
	}
	switch {
	case r.Method == http.MethodPost && key == "":
		f.write(w, r, store, false, fail)
	case fail != nil:
		write(w, *fail)
	case r.Method == http.MethodPost && key == "transaction":
		f.write(w, r, store, true, nil)
	case r.Method == http.MethodGet:
		e := f.live(store, key)
		if e == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("ETag", strconv.Itoa(e.version))
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(e.value)
	case r.Method == http.MethodDelete:
		if e := f.live(store, key); e != nil {
			if m := r.Header.Get("If-Match"); m != "" && m != strconv.Itoa(e.version) {
				write(w, Response{Status: http.StatusConflict, Body: `{"errorCode":"ERR_STATE_DELETE","message":"possible etag mismatch"}`})
				return
			}
			delete(f.state, store+"||"+key)
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		http.NotFound(w, r)
	}
}

type setRequest struct {
	Key      string            `json:"key"`
	Value    json.RawMessage   `json:"value"`
	ETag     *string           `json:"etag"`
	Options  map[string]string `json:"options"`
	Metadata map[string]string `json:"metadata"`
}

// write follows daprd's onPostState (the items in order, stopping at the
// first the store refuses: 409 for an ETag mismatch) and its transaction
// (every upsert it can, then 500 if one failed).
func (f *Fake) write(w http.ResponseWriter, r *http.Request, store string, tx bool, fail *Response) {
	var body struct {
		Operations []struct {
			Operation string     `json:"operation"`
			Request   setRequest `json:"request"`
		} `json:"operations"`
	}
	var items []setRequest
	var err error
	if tx {
		err = json.NewDecoder(r.Body).Decode(&body)
	} else {
		err = json.NewDecoder(r.Body).Decode(&items)
	}
	if err != nil {
		write(w, Response{Status: 400, Body: `{"errorCode":"ERR_MALFORMED_REQUEST","message":` + marshal(err.Error()) + `}`})
		return
	}
	failed := false
	for _, op := range body.Operations {
		if op.Operation != "upsert" {
			http.Error(w, "only upsert is faked", http.StatusBadRequest)
			return
		}
		failed = f.set(store, op.Request, true) != nil || failed
	}
	for _, it := range items {
		if fail == nil {
			fail = f.set(store, it, false)
		}
	}
	for _, it := range items {
		f.stateSaves = append(f.stateSaves, StateSave{Store: store, Key: it.Key, Value: it.Value, ETag: it.ETag,
			Options: it.Options, Metadata: it.Metadata, Status: cmp.Or(statusOf(fail), http.StatusNoContent)})
	}
	switch {
	case fail != nil:
		write(w, *fail)
	case failed:
		write(w, Response{Status: 500, Body: `{"errorCode":"ERR_STATE_TRANSACTION","message":"error while executing state transaction: possible etag mismatch"}`})
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

func statusOf(r *Response) int {
	if r == nil {
		return 0
	}
	return r.Status
}

// set applies one write, or returns the store's refusal. Dapr's Redis store
// marks a key first-write only outside transactions.
func (f *Fake) set(store string, it setRequest, viaTransaction bool) *Response {
	e := f.live(store, it.Key)
	firstWrite := it.Options["concurrency"] == "first-write"
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
	next := stateEntry{value: it.Value, version: 1, firstWrite: firstWrite && !viaTransaction}
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
			next.expires = f.clock().Add(time.Duration(secs) * time.Second)
		}
	}
	f.state[store+"||"+it.Key] = &next
	return nil
}

func (f *Fake) clock() time.Time { return f.now().Add(f.offset) }

// live returns the unexpired entry of key, or nil; the caller holds f.mu.
func (f *Fake) live(store, key string) *stateEntry {
	e := f.state[store+"||"+key]
	if e != nil && !e.expires.IsZero() && !f.clock().Before(e.expires) {
		delete(f.state, store+"||"+key)
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
		ct := resp.ContentType
		if ct == "" {
			ct = "application/json"
		}
		w.Header().Set("Content-Type", ct)
	}
	w.WriteHeader(resp.Status)
	_, _ = io.WriteString(w, resp.Body)
}
