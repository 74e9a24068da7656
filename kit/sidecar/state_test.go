package sidecar_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/taskevents/taskevents/kit/sidecar"
	"github.com/taskevents/taskevents/kit/sidecar/sidecartest"
)

// rawSidecar answers every call with status/body and remembers the last request.
type rawSidecar struct {
	*httptest.Server
	mu     sync.Mutex
	method string
	uri    string
	header http.Header
	body   string
}

func newRawSidecar(t *testing.T, status int, body string, header map[string]string) *rawSidecar {
	t.Helper()
	s := &rawSidecar{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.method, s.uri, s.header, s.body = r.Method, r.RequestURI, r.Header.Clone(), string(b)
		s.mu.Unlock()
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(s.Close)
	return s
}

// last is the last request, read under the lock the handler wrote it under.
func (s *rawSidecar) last() (method, uri string, header http.Header, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.method, s.uri, s.header, s.body
}

func TestStateRequests(t *testing.T) {
	tests := []struct {
		name       string
		call       func(*sidecar.Client) error
		wantMethod string
		wantURI    string
		wantBody   string
		wantMatch  string
	}{
		{
			name: "first-write save",
			call: func(c *sidecar.Client) error {
				return c.SaveState(context.Background(), "state store", sidecar.StateItem{Key: "idempotency-ab",
					Value: json.RawMessage(`{"task_id":"t"}`), ETag: sidecar.CreateOnly, TTL: 24 * time.Hour})
			},
			wantMethod: http.MethodPost, wantURI: "/v1.0/state/state%20store",
			wantBody: `[{"key":"idempotency-ab","value":{"task_id":"t"},"etag":"0","options":{"concurrency":"first-write"},"metadata":{"ttlInSeconds":"86400"}}]`,
		},
		{
			name: "unconditional save without TTL",
			call: func(c *sidecar.Client) error {
				return c.SaveState(context.Background(), "statestore", sidecar.StateItem{Key: "k", Value: map[string]int{"n": 1}})
			},
			wantMethod: http.MethodPost, wantURI: "/v1.0/state/statestore",
			wantBody: `[{"key":"k","value":{"n":1}}]`,
		},
		{
			name: "TTL rounded up to whole seconds",
			call: func(c *sidecar.Client) error {
				return c.SaveState(context.Background(), "statestore", sidecar.StateItem{Key: "k", Value: 1, ETag: "7", TTL: 1500 * time.Millisecond})
			},
			wantMethod: http.MethodPost, wantURI: "/v1.0/state/statestore",
			wantBody: `[{"key":"k","value":1,"etag":"7","options":{"concurrency":"first-write"},"metadata":{"ttlInSeconds":"2"}}]`,
		},
		{
			name: "transaction of upserts",
			call: func(c *sidecar.Client) error {
				return c.TransactState(context.Background(), "statestore",
					sidecar.StateItem{Key: "a", Value: "x", ETag: "3", TTL: time.Millisecond}, sidecar.StateItem{Key: "b", Value: true})
			},
			wantMethod: http.MethodPost, wantURI: "/v1.0/state/statestore/transaction",
			wantBody: `{"operations":[{"operation":"upsert","request":{"key":"a","value":"x","etag":"3","options":{"concurrency":"first-write"},"metadata":{"ttlInSeconds":"1"}}},` +
				`{"operation":"upsert","request":{"key":"b","value":true}}]}`,
		},
		{
			name:       "conditional delete",
			call:       func(c *sidecar.Client) error { return c.DeleteState(context.Background(), "statestore", "a/b", "4") },
			wantMethod: http.MethodDelete, wantURI: "/v1.0/state/statestore/a%2Fb", wantMatch: "4",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newRawSidecar(t, http.StatusNoContent, "", nil)
			if err := tt.call(sidecar.New(sidecar.Options{BaseURL: s.URL, APIToken: "s3cr3t"})); err != nil {
				t.Fatal(err)
			}
			method, uri, header, body := s.last()
			if method != tt.wantMethod || uri != tt.wantURI || body != tt.wantBody {
				t.Errorf("request = %s %s %s\nwant      %s %s %s", method, uri, body, tt.wantMethod, tt.wantURI, tt.wantBody)
			}
			if header.Get("dapr-api-token") != "s3cr3t" || header.Get("If-Match") != tt.wantMatch ||
				tt.wantBody != "" && header.Get("Content-Type") != "application/json" {
				t.Errorf("headers = %v, want the token, If-Match %q and a JSON Content-Type with a body", header, tt.wantMatch)
			}
		})
	}
}

func TestStateAnswers(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		body       string
		want       string // "ok", "taken", "unavailable", "config"
		wantStatus int
		wantCode   string
	}{
		{name: "created", status: 204, want: "ok"},
		{name: "key exists", status: 409,
			body: `{"errorCode":"ERR_STATE_SAVE","message":"failed saving state in state store statestore: possible etag mismatch. error from state store: failed to set key"}`,
			want: "taken"},
		{name: "redis down", status: 500, body: `{"errorCode":"ERR_STATE_SAVE","message":"dial tcp: connection refused"}`,
			want: "unavailable", wantStatus: 500, wantCode: "ERR_STATE_SAVE"},
		{name: "no state store configured", status: 500, body: `{"errorCode":"ERR_STATE_STORE_NOT_CONFIGURED","message":"state store is not configured"}`,
			want: "config", wantStatus: 500, wantCode: sidecar.CodeStateStoreNotConfigured},
		{name: "store not found", status: 400, body: `{"errorCode":"ERR_STATE_STORE_NOT_FOUND","message":"state store statestore is not found"}`,
			want: "config", wantStatus: 400, wantCode: sidecar.CodeStateStoreNotFound},
		{name: "wrong token", status: 401, body: "invalid api token", want: "config", wantStatus: 401},
		{name: "200 is not 204", status: 200, want: "config", wantStatus: 200},
	}
	item := sidecar.StateItem{Key: "k", Value: 1, ETag: sidecar.CreateOnly, TTL: time.Hour}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newRawSidecar(t, tt.status, tt.body, nil)
			c := sidecar.New(sidecar.Options{BaseURL: s.URL})
			checkErr(t, c.SaveState(context.Background(), "statestore", item), tt.want, tt.wantStatus, tt.wantCode)
			checkErr(t, c.DeleteState(context.Background(), "statestore", "k", "1"), tt.want, tt.wantStatus, tt.wantCode)
			if tt.want != "taken" { // daprd answers a refused transaction with 500
				checkErr(t, c.TransactState(context.Background(), "statestore", item), tt.want, tt.wantStatus, tt.wantCode)
			}
		})
	}
	c := sidecar.New(sidecar.Options{BaseURL: closedAddr(t)})
	checkErr(t, c.SaveState(context.Background(), "statestore", item), "unavailable", 0, "")
}

func TestGetState(t *testing.T) {
	s := newRawSidecar(t, http.StatusOK, `{"task_id":"t"}`, map[string]string{"ETag": "1"})
	c := sidecar.New(sidecar.Options{BaseURL: s.URL, APIToken: "s3cr3t"})
	v, found, err := c.GetState(context.Background(), "statestore", "a/b")
	if err != nil || !found || string(v.Value) != `{"task_id":"t"}` || v.ETag != "1" {
		t.Fatalf("GetState = %s %q, %v, %v", v.Value, v.ETag, found, err)
	}
	if method, uri, header, _ := s.last(); method != http.MethodGet || uri != "/v1.0/state/statestore/a%2Fb" || header.Get("dapr-api-token") != "s3cr3t" {
		t.Errorf("request = %s %s (token %q), want GET /v1.0/state/statestore/a%%2Fb with the token", method, uri, header.Get("dapr-api-token"))
	}

	absent := newRawSidecar(t, http.StatusNoContent, "", nil)
	c = sidecar.New(sidecar.Options{BaseURL: absent.URL})
	if v, found, err := c.GetState(context.Background(), "statestore", "k"); err != nil || found || v.Value != nil {
		t.Errorf("GetState of a missing key = %s, %v, %v; want not found", v.Value, found, err)
	}

	down := newRawSidecar(t, 500, `{"errorCode":"ERR_STATE_GET","message":"fail to get k from state store statestore"}`, nil)
	c = sidecar.New(sidecar.Options{BaseURL: down.URL})
	_, _, err = c.GetState(context.Background(), "statestore", "k")
	checkErr(t, err, "unavailable", 500, "ERR_STATE_GET")
}

// TestStateConcurrency runs the client against the fake's Redis semantics:
// a create-only key is created once, then written only with its current
// ETag, in a save or a transaction, and deleted only with it.
func TestStateConcurrency(t *testing.T) {
	fake := sidecartest.New(t)
	c := sidecar.New(sidecar.Options{BaseURL: fake.URL})
	ctx := context.Background()
	get := func(key string) sidecar.State {
		t.Helper()
		s, found, err := c.GetState(ctx, "statestore", key)
		if err != nil || !found {
			t.Fatalf("GetState(%s) = %v, %v", key, found, err)
		}
		return s
	}
	create := sidecar.StateItem{Key: "k", Value: "v1", ETag: sidecar.CreateOnly}
	checkErr(t, c.SaveState(ctx, "statestore", create), "ok", 0, "")
	checkErr(t, c.SaveState(ctx, "statestore", create), "taken", 0, "")
	checkErr(t, c.SaveState(ctx, "statestore", sidecar.StateItem{Key: "k", Value: "blind"}), "taken", 0, "")
	etag := get("k").ETag
	checkErr(t, c.SaveState(ctx, "statestore", sidecar.StateItem{Key: "k", Value: "v2", ETag: etag}), "ok", 0, "")
	checkErr(t, c.SaveState(ctx, "statestore", sidecar.StateItem{Key: "k", Value: "v3", ETag: etag}), "taken", 0, "")
	checkErr(t, c.TransactState(ctx, "statestore", sidecar.StateItem{Key: "k", Value: "v3", ETag: etag},
		sidecar.StateItem{Key: "other", Value: 1}), "unavailable", 500, "ERR_STATE_TRANSACTION")
	checkErr(t, c.TransactState(ctx, "statestore", sidecar.StateItem{Key: "k", Value: "v3", ETag: get("k").ETag}), "ok", 0, "")
	if s := get("k"); string(s.Value) != `"v3"` {
		t.Errorf("value %s, want v3", s.Value)
	}
	checkErr(t, c.DeleteState(ctx, "statestore", "k", etag), "taken", 0, "")
	checkErr(t, c.DeleteState(ctx, "statestore", "k", get("k").ETag), "ok", 0, "")
	checkErr(t, c.DeleteState(ctx, "statestore", "k", ""), "ok", 0, "") // already gone
	if keys := fake.Keys("statestore", ""); len(keys) != 1 || keys[0] != "other" {
		t.Errorf("keys left %v, want [other] (a transaction does not roll back)", keys)
	}

	checkErr(t, c.SaveState(ctx, "statestore", sidecar.StateItem{Key: "ttl", Value: 1, TTL: time.Minute}), "ok", 0, "")
	fake.Advance(time.Minute)
	if _, found, err := c.GetState(ctx, "statestore", "ttl"); found || err != nil {
		t.Errorf("a key past its TTL: found %v, %v", found, err)
	}
	if _, _, err := c.GetState(ctx, "nope", "k"); err == nil {
		t.Error("a state store the sidecar has not loaded answered")
	}
}
