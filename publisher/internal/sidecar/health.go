package sidecar

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// metadataLimit caps the /v1.0/metadata answer; it lists components,
// subscriptions and actors and stays well under this.
const metadataLimit = 1 << 20

// CheckOutbound asks GET /v1.0/healthz/outbound, which answers 204 once the
// sidecar has loaded its components and can publish, even before it sees the
// app's port. (/v1.0/healthz would wait for the app and never turn ready here
// if daprd waits on our port.)
func (c *Client) CheckOutbound(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1.0/healthz/outbound", nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
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
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1.0/metadata", nil)
	if err != nil {
		return nil, err
	}
	c.setToken(req)
	resp, err := c.http.Do(req)
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
