// Package sidecar is the worker's client for its own Dapr sidecar's HTTP API:
// the state store (dedupe records, handled tasks, dead letters) and publish
// (dead-letter replay). Plain net/http, no Dapr SDK.
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

// ErrConflict is a first-write or ETag check that failed: someone else wrote
// the key first, or changed it since it was read.
var ErrConflict = errors.New("state conflict")

// Error is any other answer the sidecar gave that was not a success.
type Error struct {
	Op     string
	Status int
	Body   string
}

func (e *Error) Error() string {
	return fmt.Sprintf("dapr %s: sidecar answered %d: %s", e.Op, e.Status, e.Body)
}

// Options configure a Client.
type Options struct {
	BaseURL  string // e.g. http://127.0.0.1:3500
	Store    string // state store component name
	APIToken string // DAPR_API_TOKEN; a secret, never logged
	Timeout  time.Duration
}

// Client is safe for concurrent use.
type Client struct {
	base  string
	store string
	token string
	http  *http.Client
}

// New returns a client. Connections are kept alive: every delivery makes
// two or three state calls, and a handshake per call would dominate them.
func New(o Options) *Client {
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	return &Client{
		base:  o.BaseURL,
		store: url.PathEscape(o.Store),
		token: o.APIToken,
		http: &http.Client{
			Timeout:   o.Timeout,
			Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second},
		},
	}
}

// Store is the state store's component name.
func (c *Client) Store() string { return c.store }

// Create saves value under key only if the key does not exist (first-write
// with ETag "0"), with a TTL when ttl > 0. It reports ErrConflict if the key
// exists. A key created this way can afterwards only be written or deleted
// with its current ETag.
func (c *Client) Create(ctx context.Context, key string, value any, ttl time.Duration) error {
	zero := "0"
	return c.save(ctx, []SetRequest{{Key: key, Value: value, ETag: &zero,
		Options: &SetOptions{Concurrency: "first-write"}, Metadata: ttlMetadata(ttl)}})
}

// Get reads key into v. found is false when the key does not exist.
func (c *Client) Get(ctx context.Context, key string, v any) (etag string, found bool, err error) {
	resp, err := c.do(ctx, http.MethodGet, "/v1.0/state/"+c.store+"/"+url.PathEscape(key), "", nil, nil)
	if err != nil {
		return "", false, err
	}
	defer drain(resp)
	switch resp.StatusCode {
	case http.StatusNoContent:
		return "", false, nil
	case http.StatusOK:
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			return "", false, fmt.Errorf("dapr get state %q: decoding value: %w", key, err)
		}
		return resp.Header.Get("ETag"), true, nil
	default:
		return "", false, answerError("get state", resp)
	}
}

// Delete removes key if its ETag still matches (an empty etag deletes
// unconditionally). A key that is already gone is not an error.
func (c *Client) Delete(ctx context.Context, key, etag string) error {
	var h http.Header
	if etag != "" {
		h = http.Header{"If-Match": {etag}}
	}
	resp, err := c.do(ctx, http.MethodDelete, "/v1.0/state/"+c.store+"/"+url.PathEscape(key), "", nil, h)
	if err != nil {
		return err
	}
	defer drain(resp)
	return expectNoContent("delete state", resp)
}

// Upsert saves value under key; with etag not empty only if it still matches.
func (c *Client) Upsert(ctx context.Context, key string, value any, etag string, ttl time.Duration) error {
	r := SetRequest{Key: key, Value: value, Metadata: ttlMetadata(ttl)}
	if etag != "" {
		r.ETag, r.Options = &etag, &SetOptions{Concurrency: "first-write"}
	}
	return c.save(ctx, []SetRequest{r})
}

// SetRequest is one entry of a save or a transaction's upsert.
type SetRequest struct {
	Key      string            `json:"key"`
	Value    any               `json:"value"`
	ETag     *string           `json:"etag,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
	Options  *SetOptions       `json:"options,omitempty"`
}

// SetOptions are a save's concurrency options.
type SetOptions struct {
	Concurrency string `json:"concurrency,omitempty"`
}

// Transact applies upserts in one state transaction.
func (c *Client) Transact(ctx context.Context, upserts ...SetRequest) error {
	type op struct {
		Operation string     `json:"operation"`
		Request   SetRequest `json:"request"`
	}
	ops := make([]op, len(upserts))
	for i, u := range upserts {
		ops[i] = op{Operation: "upsert", Request: u}
	}
	body, err := json.Marshal(map[string]any{"operations": ops})
	if err != nil {
		return err
	}
	resp, err := c.do(ctx, http.MethodPost, "/v1.0/state/"+c.store+"/transaction", "application/json", body, nil)
	if err != nil {
		return err
	}
	defer drain(resp)
	return expectNoContent("state transaction", resp)
}

// PublishCloudEvent publishes a complete CloudEvent as it is, so that its
// id, source and type survive (daprd adds only what is missing).
func (c *Client) PublishCloudEvent(ctx context.Context, pubsub, topic string, event []byte) error {
	resp, err := c.do(ctx, http.MethodPost, "/v1.0/publish/"+url.PathEscape(pubsub)+"/"+url.PathEscape(topic),
		"application/cloudevents+json", event, nil)
	if err != nil {
		return err
	}
	defer drain(resp)
	return expectNoContent("publish", resp)
}

// TTL is the ttlInSeconds metadata for a duration, rounded up: a lease must
// never be shorter than asked for.
func TTL(d time.Duration) string {
	return strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10)
}

func ttlMetadata(ttl time.Duration) map[string]string {
	if ttl <= 0 {
		return nil
	}
	return map[string]string{"ttlInSeconds": TTL(ttl)}
}

func (c *Client) save(ctx context.Context, reqs []SetRequest) error {
	body, err := json.Marshal(reqs)
	if err != nil {
		return err
	}
	resp, err := c.do(ctx, http.MethodPost, "/v1.0/state/"+c.store, "application/json", body, nil)
	if err != nil {
		return err
	}
	defer drain(resp)
	return expectNoContent("save state", resp)
}

func (c *Client) do(ctx context.Context, method, path, contentType string, body []byte, h http.Header) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("dapr-api-token", c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("dapr %s %s: %w", method, path, err)
	}
	return resp, nil
}

func expectNoContent(op string, resp *http.Response) error {
	switch resp.StatusCode {
	case http.StatusNoContent, http.StatusOK:
		return nil
	case http.StatusConflict:
		return fmt.Errorf("dapr %s: %w", op, ErrConflict)
	default:
		return answerError(op, resp)
	}
}

func answerError(op string, resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return &Error{Op: op, Status: resp.StatusCode, Body: string(bytes.TrimSpace(b))}
}

// drain lets the connection be reused.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
}
