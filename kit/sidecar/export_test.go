package sidecar

import "net/http"

// HTTPClient lets the tests see how New built the client.
func (c *Client) HTTPClient() *http.Client { return c.http }
