package sidecar

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// stateValueLimit caps a state value read back; the publisher only stores
// small records (a task id and a fingerprint).
const stateValueLimit = 64 << 10

// Error codes from daprd's state API that the publisher reacts to.
const (
	CodeStateStoreNotFound      = "ERR_STATE_STORE_NOT_FOUND"
	CodeStateStoreNotConfigured = "ERR_STATE_STORE_NOT_CONFIGURED"
)

// ErrETagMismatch means a first-write save found the key already taken:
// daprd answers 409 when the store reports an ETag mismatch.
var ErrETagMismatch = errors.New("state key already exists (etag mismatch)")

// SaveStateFirstWrite stores value (a JSON document) under key in the state
// store named store, only if the key does not exist yet, and lets the store
// expire it after ttl (rounded up to whole seconds, at least one). It returns
// nil when the key was created, an error matching ErrETagMismatch when it
// already existed, *UnavailableError when the sidecar or the store could not
// be reached, and *ConfigError for answers a retry cannot change.
//
// ETag "0" with first-write concurrency is how Dapr spells "create only": for
// a key that a first-write save created before, the store compares the ETag
// and refuses (Redis: the version is then at least 1).
func (c *Client) SaveStateFirstWrite(ctx context.Context, store, key string, value json.RawMessage, ttl time.Duration) error {
	secs := int64((ttl + time.Second - 1) / time.Second)
	body, err := json.Marshal([]stateItem{{
		Key:      key,
		Value:    value,
		ETag:     "0",
		Options:  stateOptions{Concurrency: "first-write"},
		Metadata: map[string]string{"ttlInSeconds": strconv.FormatInt(max(secs, 1), 10)},
	}})
	if err != nil {
		return fmt.Errorf("encode state item: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.statePath(store), bytes.NewReader(body))
	if err != nil {
		return &ConfigError{Message: "cannot build the state request: " + err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	c.setToken(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return &UnavailableError{Attempts: 1, Err: err}
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

// GetState reads key from the state store named store. found is false when
// the key does not exist or has expired (daprd answers 204).
func (c *Client) GetState(ctx context.Context, store, key string) (value []byte, found bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.statePath(store)+"/"+url.PathEscape(key), nil)
	if err != nil {
		return nil, false, &ConfigError{Message: "cannot build the state request: " + err.Error()}
	}
	c.setToken(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, false, &UnavailableError{Attempts: 1, Err: err}
	}
	defer closeBody(resp)
	switch resp.StatusCode {
	case http.StatusNoContent:
		return nil, false, nil
	case http.StatusOK:
		raw, err := io.ReadAll(io.LimitReader(resp.Body, stateValueLimit+1))
		if err != nil {
			return nil, false, &UnavailableError{Attempts: 1, Status: resp.StatusCode, Err: fmt.Errorf("read state value: %w", err)}
		}
		if len(raw) > stateValueLimit {
			return nil, false, fmt.Errorf("state value of %q is larger than %d bytes", key, stateValueLimit)
		}
		return raw, true, nil
	default:
		code, msg := readError(resp.Body)
		return nil, false, stateError(resp.StatusCode, code, msg)
	}
}

func (c *Client) statePath(store string) string {
	return c.base + "/v1.0/state/" + url.PathEscape(store)
}

// stateError classifies a failed state call. daprd answers 500 both when the
// store itself fails (ERR_STATE_SAVE, ERR_STATE_GET: Redis down, a timeout)
// and when no state store is configured at all; only the first is worth a
// retry.
func stateError(status int, code, msg string) error {
	if status >= 500 && code != CodeStateStoreNotConfigured {
		return &UnavailableError{Attempts: 1, Status: status, Code: code,
			Err: fmt.Errorf("sidecar answered %d %s: %s", status, code, msg)}
	}
	if msg == "" {
		msg = "unexpected answer from the sidecar"
	}
	return &ConfigError{Status: status, Code: code, Message: msg}
}

type stateItem struct {
	Key      string            `json:"key"`
	Value    json.RawMessage   `json:"value"`
	ETag     string            `json:"etag"`
	Options  stateOptions      `json:"options"`
	Metadata map[string]string `json:"metadata"`
}

type stateOptions struct {
	Concurrency string `json:"concurrency"`
}
