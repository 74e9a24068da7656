package sidecar

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// CreateOnly is the ETag of a write that only creates: with first-write
// concurrency, ETag "0" is how Dapr spells "only if the key does not exist".
const CreateOnly = "0"

// StateItem is one write to a state store.
type StateItem struct {
	Key string
	// Value is written as JSON (encoding/json).
	Value any
	// ETag, when not empty, makes the write conditional, with first-write
	// concurrency: CreateOnly creates the key only if it does not exist, any
	// other ETag writes only if the key is still at that version. A key
	// written this way can afterwards only be written or deleted with its
	// current ETag.
	ETag string
	// TTL lets the store expire the key (ttlInSeconds, rounded up to whole
	// seconds: a lease must never be shorter than asked for); 0 keeps it.
	TTL time.Duration
}

type wireItem struct {
	Key      string            `json:"key"`
	Value    any               `json:"value"`
	ETag     string            `json:"etag,omitempty"`
	Options  map[string]string `json:"options,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

func (it StateItem) wire() wireItem {
	w := wireItem{Key: it.Key, Value: it.Value, ETag: it.ETag}
	if it.ETag != "" {
		w.Options = map[string]string{"concurrency": "first-write"}
	}
	if it.TTL > 0 {
		w.Metadata = map[string]string{"ttlInSeconds": strconv.FormatInt(int64((it.TTL+time.Second-1)/time.Second), 10)}
	}
	return w
}

// SaveState writes it to the state store named store (POST
// /v1.0/state/{store}). It returns nil once saved, an error matching
// ErrETagMismatch when a conditional write was refused, *UnavailableError
// when the sidecar or the store could not be reached, and *ConfigError for
// answers a retry cannot change.
func (c *Client) SaveState(ctx context.Context, store string, it StateItem) error {
	body, err := json.Marshal([]wireItem{it.wire()})
	if err != nil {
		return fmt.Errorf("encode state item %q: %w", it.Key, err)
	}
	return c.stateWrite(ctx, http.MethodPost, c.statePath(store), body, "")
}

// TransactState applies upserts in one state transaction (POST
// /v1.0/state/{store}/transaction). Errors are those of SaveState, except
// that daprd answers a refused ETag inside a transaction with 500, which
// comes back as *UnavailableError.
func (c *Client) TransactState(ctx context.Context, store string, upserts ...StateItem) error {
	type op struct {
		Operation string   `json:"operation"`
		Request   wireItem `json:"request"`
	}
	var tx struct {
		Operations []op `json:"operations"`
	}
	for _, u := range upserts {
		tx.Operations = append(tx.Operations, op{Operation: "upsert", Request: u.wire()})
	}
	body, err := json.Marshal(tx)
	if err != nil {
		return fmt.Errorf("encode state transaction: %w", err)
	}
	return c.stateWrite(ctx, http.MethodPost, c.statePath(store)+"/transaction", body, "")
}

// DeleteState removes key if its ETag still matches (an empty etag deletes
// unconditionally). A key that is already gone is not an error.
func (c *Client) DeleteState(ctx context.Context, store, key, etag string) error {
	return c.stateWrite(ctx, http.MethodDelete, c.statePath(store)+"/"+url.PathEscape(key), nil, etag)
}

func (c *Client) stateWrite(ctx context.Context, method, target string, body []byte, ifMatch string) error {
	contentType := ""
	if body != nil {
		contentType = contentTypeJSON
	}
	resp, err := c.call(ctx, method, target, body, "Content-Type", contentType, "If-Match", ifMatch)
	if err != nil {
		return err
	}
	defer closeBody(resp)
	if resp.StatusCode == http.StatusNoContent {
		return nil
	}
	code, msg := readError(resp.Body)
	if resp.StatusCode == http.StatusConflict {
		return fmt.Errorf("%w: %s", ErrETagMismatch, msg)
	}
	return stateError(resp.StatusCode, code, msg)
}

// stateValueLimit caps a state value read back. The largest the apps keep
// are the worker's dead letters: an event of up to MAX_EVENT_BYTES, base64
// when it was not JSON.
const stateValueLimit = 32 << 20

// State is a value read from a state store, with its ETag.
type State struct {
	Value json.RawMessage
	ETag  string
}

// GetState reads key from the state store named store. found is false when
// the key does not exist or has expired (daprd answers 204). Errors are
// *UnavailableError or *ConfigError, as for SaveState.
func (c *Client) GetState(ctx context.Context, store, key string) (s State, found bool, err error) {
	resp, err := c.call(ctx, http.MethodGet, c.statePath(store)+"/"+url.PathEscape(key), nil)
	if err != nil {
		return State{}, false, err
	}
	defer closeBody(resp)
	switch resp.StatusCode {
	case http.StatusNoContent:
		return State{}, false, nil
	case http.StatusOK:
		raw, err := io.ReadAll(io.LimitReader(resp.Body, stateValueLimit+1))
		if err != nil {
			return State{}, false, &UnavailableError{Attempts: 1, Status: resp.StatusCode, Err: fmt.Errorf("read state value: %w", err)}
		}
		if len(raw) > stateValueLimit {
			return State{}, false, fmt.Errorf("state value of %q is larger than %d bytes", key, stateValueLimit)
		}
		return State{Value: raw, ETag: resp.Header.Get("ETag")}, true, nil
	default:
		code, msg := readError(resp.Body)
		return State{}, false, stateError(resp.StatusCode, code, msg)
	}
}

func (c *Client) statePath(store string) string {
	return c.base + "/v1.0/state/" + url.PathEscape(store)
}

// stateError classifies a failed state call. daprd answers 500 both when the
// store itself fails (ERR_STATE_SAVE, ERR_STATE_GET, ERR_STATE_TRANSACTION:
// Redis down, a timeout) and when no state store is configured at all; only
// the first is worth a retry.
func stateError(status int, code, msg string) error {
	if status >= 500 && code != CodeStateStoreNotConfigured {
		return &UnavailableError{Attempts: 1, Status: status, Code: code,
			Err: fmt.Errorf("sidecar answered %d %s: %s", status, code, msg)}
	}
	return configError(status, code, msg)
}
