// Package sidecartest is an httptest stand-in for the parts of daprd's HTTP
// API the worker calls: state (save, get, delete, transaction) and publish.
//
// The state semantics follow Dapr's Redis state store, which the project
// runs: ETags are version counters; a key saved with first-write can only be
// written again with its current ETag; ttlInSeconds expires a key; and a
// transaction applies every operation it can without rolling back the others
// (Redis MULTI/EXEC), answering 500 if one failed.
package sidecartest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fake is safe for concurrent use.
type Fake struct {
	*httptest.Server

	mu        sync.Mutex
	now       func() time.Time
	entries   map[string]*entry
	published []Published
	down      bool
}

type entry struct {
	value      json.RawMessage
	version    int
	firstWrite bool
	expires    time.Time
}

// Published is one publish the fake accepted.
type Published struct {
	PubSub, Topic, ContentType string
	Body                       []byte
}

// New starts a fake sidecar, closed at the end of the test.
func New(t testing.TB) *Fake {
	f := &Fake{now: time.Now, entries: map[string]*entry{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

// SetClock replaces time.Now for TTLs.
func (f *Fake) SetClock(now func() time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = now
}

// SetDown makes every call answer 500, as when the state store is away.
func (f *Fake) SetDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
}

// Value returns the stored JSON of key, or nil.
func (f *Fake) Value(key string) json.RawMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.live(key); e != nil {
		return e.value
	}
	return nil
}

// Keys returns the live keys that start with prefix.
func (f *Fake) Keys(prefix string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for k := range f.entries {
		if strings.HasPrefix(k, prefix) && f.live(k) != nil {
			out = append(out, k)
		}
	}
	return out
}

// Published returns every accepted publish.
func (f *Fake) Published() []Published {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Published(nil), f.published...)
}

func (f *Fake) live(key string) *entry {
	e := f.entries[key]
	if e != nil && !e.expires.IsZero() && !f.now().Before(e.expires) {
		delete(f.entries, key)
		return nil
	}
	return e
}

type setRequest struct {
	Key      string            `json:"key"`
	Value    json.RawMessage   `json:"value"`
	ETag     *string           `json:"etag"`
	Metadata map[string]string `json:"metadata"`
	Options  struct {
		Concurrency string `json:"concurrency"`
	} `json:"options"`
}

// set applies one save and reports whether its ETag check passed.
func (f *Fake) set(r setRequest, viaTransaction bool) bool {
	e := f.live(r.Key)
	want := ""
	if r.ETag != nil && r.Options.Concurrency != "last-write" {
		want = *r.ETag
	}
	if e != nil {
		cur := strconv.Itoa(e.version)
		ok := want == cur || (want == "" || want == "0") && !e.firstWrite
		if !ok {
			return false
		}
	}
	if e == nil {
		e = &entry{}
		f.entries[r.Key] = e
	}
	e.value = r.Value
	e.version++
	// Dapr's Redis store marks first-write keys only outside transactions.
	if r.Options.Concurrency == "first-write" && !viaTransaction {
		e.firstWrite = true
	}
	if s := r.Metadata["ttlInSeconds"]; s != "" {
		n, _ := strconv.Atoi(s)
		e.expires = f.now().Add(time.Duration(n) * time.Second)
	}
	return true
}

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		http.Error(w, `{"errorCode":"ERR_STATE_STORE_NOT_FOUND"}`, http.StatusInternalServerError)
		return
	}
	body, _ := io.ReadAll(r.Body)
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	switch {
	case len(parts) == 4 && parts[1] == "publish" && r.Method == http.MethodPost:
		f.published = append(f.published, Published{PubSub: parts[2], Topic: parts[3],
			ContentType: r.Header.Get("Content-Type"), Body: body})
		w.WriteHeader(http.StatusNoContent)
	case len(parts) == 3 && parts[1] == "state" && r.Method == http.MethodPost:
		var reqs []setRequest
		if err := json.Unmarshal(body, &reqs); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, req := range reqs {
			if !f.set(req, false) {
				http.Error(w, `{"errorCode":"ERR_STATE_SAVE","message":"possible etag mismatch"}`, http.StatusConflict)
				return
			}
		}
		w.WriteHeader(http.StatusNoContent)
	case len(parts) == 4 && parts[1] == "state" && parts[3] == "transaction" && r.Method == http.MethodPost:
		var tx struct {
			Operations []struct {
				Operation string     `json:"operation"`
				Request   setRequest `json:"request"`
			} `json:"operations"`
		}
		if err := json.Unmarshal(body, &tx); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		failed := false
		for _, op := range tx.Operations {
			if op.Operation != "upsert" {
				http.Error(w, "only upsert is faked", http.StatusBadRequest)
				return
			}
			if !f.set(op.Request, true) {
				failed = true
			}
		}
		if failed {
			http.Error(w, `{"errorCode":"ERR_STATE_TRANSACTION"}`, http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case len(parts) == 4 && parts[1] == "state" && r.Method == http.MethodGet:
		e := f.live(parts[3])
		if e == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("ETag", strconv.Itoa(e.version))
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(e.value)
	case len(parts) == 4 && parts[1] == "state" && r.Method == http.MethodDelete:
		e := f.live(parts[3])
		if e != nil {
			if m := r.Header.Get("If-Match"); m != "" && m != strconv.Itoa(e.version) {
				http.Error(w, `{"errorCode":"ERR_STATE_DELETE"}`, http.StatusConflict)
				return
			}
			delete(f.entries, parts[3])
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		http.Error(w, "not faked: "+r.Method+" "+r.URL.Path, http.StatusNotFound)
	}
}
