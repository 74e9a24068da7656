package sidecar_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/taskevents/taskevents/publisher/internal/sidecar"
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

func TestSaveStateFirstWriteRequest(t *testing.T) {
	s := newRawSidecar(t, http.StatusNoContent, "", nil)
	c, _ := newClient(s.URL, func(o *sidecar.Options) { o.APIToken = "s3cr3t" })
	err := c.SaveStateFirstWrite(context.Background(), "state store", "idempotency-ab", json.RawMessage(`{"task_id":"t"}`), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	method, uri, header, body := s.last()
	const want = `[{"key":"idempotency-ab","value":{"task_id":"t"},"etag":"0","options":{"concurrency":"first-write"},"metadata":{"ttlInSeconds":"86400"}}]`
	if method != http.MethodPost || uri != "/v1.0/state/state%20store" || body != want {
		t.Errorf("request = %s %s %s\nwant      POST /v1.0/state/state%%20store %s", method, uri, body, want)
	}
	if header.Get("dapr-api-token") != "s3cr3t" || header.Get("Content-Type") != "application/json" {
		t.Errorf("headers = %v, want the token and Content-Type application/json", header)
	}
}

func TestStateAnswers(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		body       string
		wantErr    string // "", "taken", "unavailable", "config"
		wantStatus int
		wantCode   string
	}{
		{name: "created", status: 204},
		{name: "key exists", status: 409,
			body:    `{"errorCode":"ERR_STATE_SAVE","message":"failed saving state in state store statestore: possible etag mismatch. error from state store: failed to set key"}`,
			wantErr: "taken"},
		{name: "redis down", status: 500, body: `{"errorCode":"ERR_STATE_SAVE","message":"dial tcp: connection refused"}`,
			wantErr: "unavailable", wantStatus: 500, wantCode: "ERR_STATE_SAVE"},
		{name: "no state store configured", status: 500, body: `{"errorCode":"ERR_STATE_STORE_NOT_CONFIGURED","message":"state store is not configured"}`,
			wantErr: "config", wantStatus: 500, wantCode: sidecar.CodeStateStoreNotConfigured},
		{name: "store not found", status: 400, body: `{"errorCode":"ERR_STATE_STORE_NOT_FOUND","message":"state store statestore is not found"}`,
			wantErr: "config", wantStatus: 400, wantCode: sidecar.CodeStateStoreNotFound},
		{name: "wrong token", status: 401, body: "invalid api token", wantErr: "config", wantStatus: 401},
		{name: "200 is not 204", status: 200, wantErr: "config", wantStatus: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newRawSidecar(t, tt.status, tt.body, nil)
			c, _ := newClient(s.URL, nil)
			err := c.SaveStateFirstWrite(context.Background(), "statestore", "k", json.RawMessage(`1`), time.Hour)
			checkStateErr(t, err, tt.wantErr, tt.wantStatus, tt.wantCode)
		})
	}
	c, _ := newClient("http://127.0.0.1:1", nil)
	checkStateErr(t, c.SaveStateFirstWrite(context.Background(), "statestore", "k", json.RawMessage(`1`), time.Hour), "unavailable", 0, "")
}

func checkStateErr(t *testing.T, err error, want string, status int, code string) {
	t.Helper()
	var ue *sidecar.UnavailableError
	var ce *sidecar.ConfigError
	switch want {
	case "":
		if err != nil {
			t.Errorf("err = %v, want nil", err)
		}
	case "taken":
		if !errors.Is(err, sidecar.ErrETagMismatch) {
			t.Errorf("err = %v, want ErrETagMismatch", err)
		}
	case "unavailable":
		if !errors.As(err, &ue) || ue.Status != status || ue.Code != code {
			t.Errorf("err = %v (%T), want unavailable %d %s", err, err, status, code)
		}
	case "config":
		if !errors.As(err, &ce) || ce.Status != status || ce.Code != code {
			t.Errorf("err = %v (%T), want config %d %s", err, err, status, code)
		}
	}
}

func TestGetState(t *testing.T) {
	s := newRawSidecar(t, http.StatusOK, `{"task_id":"t"}`, map[string]string{"ETag": "1"})
	c, _ := newClient(s.URL, func(o *sidecar.Options) { o.APIToken = "s3cr3t" })
	v, found, err := c.GetState(context.Background(), "statestore", "a/b")
	if err != nil || !found || string(v) != `{"task_id":"t"}` {
		t.Fatalf("GetState = %s, %v, %v", v, found, err)
	}
	if method, uri, header, _ := s.last(); method != http.MethodGet || uri != "/v1.0/state/statestore/a%2Fb" || header.Get("dapr-api-token") != "s3cr3t" {
		t.Errorf("request = %s %s (token %q), want GET /v1.0/state/statestore/a%%2Fb with the token", method, uri, header.Get("dapr-api-token"))
	}

	absent := newRawSidecar(t, http.StatusNoContent, "", nil)
	c, _ = newClient(absent.URL, nil)
	if v, found, err := c.GetState(context.Background(), "statestore", "k"); err != nil || found || v != nil {
		t.Errorf("GetState of a missing key = %s, %v, %v; want not found", v, found, err)
	}

	down := newRawSidecar(t, 500, `{"errorCode":"ERR_STATE_GET","message":"fail to get k from state store statestore"}`, nil)
	c, _ = newClient(down.URL, nil)
	_, _, err = c.GetState(context.Background(), "statestore", "k")
	checkStateErr(t, err, "unavailable", 500, "ERR_STATE_GET")
}
