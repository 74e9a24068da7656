// Package sidecar is the one client of the Dapr sidecar's HTTP API that both
// apps use, with plain net/http and no Dapr SDK: publish and bulk publish, the
// state store (first-write saves, reads, transactions, deletes), the outbound
// health check and the loaded components.
//
// It is thin on purpose: every method makes one HTTP call and maps daprd's
// answer to nil or a typed error. Whether and how to retry is the caller's
// decision; the errors say which failures a retry can fix.
package sidecar

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Error codes from daprd's answers that callers react to.
const (
	CodePublishMessage          = "ERR_PUBSUB_PUBLISH_MESSAGE"
	CodeNotFound                = "ERR_PUBSUB_NOT_FOUND"
	CodeForbidden               = "ERR_PUBSUB_FORBIDDEN"
	CodeStateStoreNotFound      = "ERR_STATE_STORE_NOT_FOUND"
	CodeStateStoreNotConfigured = "ERR_STATE_STORE_NOT_CONFIGURED"
)

// ErrUnavailable matches every *UnavailableError via errors.Is.
var ErrUnavailable = errors.New("dapr sidecar unavailable")

// UnavailableError is a failure a retry may fix: the sidecar could not be
// reached or timed out, the broker refused the message after daprd's own
// resiliency (500 ERR_PUBSUB_PUBLISH_MESSAGE), or the state store failed.
type UnavailableError struct {
	// Attempts is 1 from this package; a caller that retried says how often.
	Attempts int
	// Status and Code are the sidecar's last answer, if it answered at all.
	Status int
	Code   string
	Err    error
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("%v after %d attempt(s): %v", ErrUnavailable, e.Attempts, e.Err)
}

// Is makes errors.Is(err, ErrUnavailable) true.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

func (e *UnavailableError) Unwrap() error { return e.Err }

// ConfigError means the sidecar answered with something a retry cannot fix:
// a missing component, a forbidden topic, a wrong API token, a bad request.
type ConfigError struct {
	Status  int    // the sidecar's HTTP status
	Code    string // errorCode from the body; empty for 401 (plain text)
	Message string // message from the body (or the plain-text body)
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("dapr sidecar rejected the request: %d %s: %s", e.Status, cmp.Or(e.Code, http.StatusText(e.Status)), e.Message)
}

// ErrETagMismatch is a conditional state write that daprd refused with 409:
// a create-only key that already exists, or a key that changed since its
// ETag was read.
var ErrETagMismatch = errors.New("state etag mismatch: the key exists or has changed")

// Options configure a Client.
type Options struct {
	// BaseURL is the sidecar's HTTP API root, e.g. http://127.0.0.1:3500.
	BaseURL string
	// APIToken is sent as dapr-api-token when not empty; a secret, never logged.
	APIToken string
	// MaxIdleConns sizes the keep-alive pool (see New). Default 256.
	MaxIdleConns int
	// Timeout bounds every call on top of its context; 0: the context alone.
	Timeout time.Duration
}

// Client is safe for concurrent use.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// New returns a Client for a sidecar on the same host or pod. net/http
// keeps only 2 idle connections per host by default, so under concurrency
// every extra call would dial a new TCP connection and leave it in
// TIME_WAIT; the pool is sized to the expected concurrency instead.
func New(o Options) *Client {
	if o.MaxIdleConns <= 0 {
		o.MaxIdleConns = 256
	}
	tr := &http.Transport{
		Proxy: nil, // the sidecar is local; HTTP(S)_PROXY must never apply to it
		DialContext: (&net.Dialer{
			Timeout:   2 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          o.MaxIdleConns,
		MaxIdleConnsPerHost:   o.MaxIdleConns,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &Client{base: strings.TrimRight(o.BaseURL, "/"), token: o.APIToken, http: &http.Client{
		Transport: tr,
		Timeout:   o.Timeout,
		// daprd never redirects; a redirect means something else is listening.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// call makes one request with the API token and the given header pairs
// (empty values are left out). A request that cannot be built is a
// *ConfigError; a transport failure (refused, reset, timed out) an
// *UnavailableError.
func (c *Client) call(ctx context.Context, method, target string, body []byte, header ...string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		return nil, &ConfigError{Message: "cannot build the request: " + err.Error()}
	}
	if c.token != "" {
		req.Header.Set("dapr-api-token", c.token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] != "" {
			req.Header.Set(header[i], header[i+1])
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &UnavailableError{Attempts: 1, Err: err}
	}
	return resp, nil
}

// errorBodyLimit caps how much of an error answer is read: daprd's error
// bodies are a few hundred bytes, and an unexpected server must not make us
// buffer megabytes.
const errorBodyLimit = 4 << 10

// readError reads a daprd error body: {"errorCode":"ERR_…","message":"…"}, or
// plain text (the 401 "invalid api token").
func readError(body io.Reader) (code, msg string) {
	raw, _ := io.ReadAll(io.LimitReader(body, errorBodyLimit))
	return parseError(raw)
}

func parseError(raw []byte) (code, msg string) {
	var e struct {
		ErrorCode string `json:"errorCode"`
		Message   string `json:"message"`
	}
	if json.Unmarshal(raw, &e) == nil && (e.ErrorCode != "" || e.Message != "") {
		return e.ErrorCode, e.Message
	}
	return "", strings.TrimSpace(strings.ToValidUTF8(string(raw), "\uFFFD"))
}

func configError(status int, code, msg string) *ConfigError {
	return &ConfigError{Status: status, Code: code, Message: cmp.Or(msg, "unexpected answer from the sidecar")}
}

// drainLimit is how much of an unread body is discarded so the keep-alive
// connection can be reused; beyond it, closing is cheaper.
const drainLimit = 64 << 10

func closeBody(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainLimit))
	_ = resp.Body.Close()
}

// metadataLimit caps the /v1.0/metadata answer; it lists components,
// subscriptions and actors and stays well under this.
const metadataLimit = 1 << 20

// CheckOutbound asks GET /v1.0/healthz/outbound, which answers 204 once the
// sidecar has loaded its components and can publish, even before it sees the
// app's port. (/v1.0/healthz would wait for the app and never turn ready if
// daprd waits on the app's port.)
func (c *Client) CheckOutbound(ctx context.Context) error {
	resp, err := c.call(ctx, http.MethodGet, c.base+"/v1.0/healthz/outbound", nil)
	if err != nil {
		return fmt.Errorf("sidecar outbound health check: %w", err)
	}
	defer closeBody(resp)
	if resp.StatusCode != http.StatusNoContent {
		code, msg := readError(resp.Body)
		return fmt.Errorf("sidecar outbound health check answered %d %s: %s", resp.StatusCode, code, msg)
	}
	return nil
}

// Component is one entry of the sidecar's loaded components.
type Component struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// Components lists the components the sidecar has loaded (GET /v1.0/metadata).
// A 401 comes back as *ConfigError.
func (c *Client) Components(ctx context.Context) ([]Component, error) {
	resp, err := c.call(ctx, http.MethodGet, c.base+"/v1.0/metadata", nil)
	if err != nil {
		return nil, fmt.Errorf("sidecar metadata: %w", err)
	}
	defer closeBody(resp)
	if resp.StatusCode != http.StatusOK {
		code, msg := readError(resp.Body)
		return nil, &ConfigError{Status: resp.StatusCode, Code: code, Message: msg}
	}
	var md struct {
		Components []Component `json:"components"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, metadataLimit)).Decode(&md); err != nil {
		return nil, fmt.Errorf("sidecar metadata: decode: %w", err)
	}
	return md.Components, nil
}
