// Package statestore reads the JSON documents the worker keeps in a Dapr
// state store: dedupe marks and dead letters.
package statestore

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/taskevents/taskevents/kit/sidecar"
)

// Get reads key from the state store named store into v, and returns the
// ETag a conditional write of it needs; found is false when there is no key.
func Get(ctx context.Context, c *sidecar.Client, store, key string, v any) (etag string, found bool, err error) {
	s, found, err := c.GetState(ctx, store, key)
	if err != nil || !found {
		return "", false, err
	}
	if err := json.Unmarshal(s.Value, v); err != nil {
		return "", false, fmt.Errorf("state store %s: %s: %w", store, key, err)
	}
	return s.ETag, true, nil
}
