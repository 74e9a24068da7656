package sidecar

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// bulkErrorLimit caps how much of a bulk error answer is read: daprd lists
// every failed entry with its error message, a few hundred bytes each.
const bulkErrorLimit = 1 << 20

// PublishBulk makes one attempt to publish entries in a single request to
// daprd's bulk publish API. It returns one error per entry, in order: nil
// (accepted), a *ConfigError (the whole request was refused), or an error
// worth retrying that entry alone. It logs nothing; Finish does, per entry.
//
// daprd applies each entry's own metadata to its CloudEvent, so every entry
// keeps its own cloudevent.id, type, partitionKey and trace context (as
// cloudevent.traceparent: the bulk request's traceparent header would give
// every entry the same parent).
func (c *Client) PublishBulk(ctx context.Context, entries []Entry) []error {
	start := time.Now()
	errs := c.publishBulk(ctx, entries)
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		}
	}
	c.observe.PublishCall(true, len(entries), ok, time.Since(start))
	return errs
}

func (c *Client) publishBulk(ctx context.Context, entries []Entry) []error {
	errs := make([]error, len(entries))
	setAll := func(err error) []error {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	body := encodeBulk(entries)
	ctx, cancel := context.WithTimeout(ctx, c.attemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.bulkPath, bytes.NewReader(body))
	if err != nil {
		return setAll(&ConfigError{Message: "cannot build the bulk publish request: " + err.Error()})
	}
	req.Header.Set("Content-Type", "application/json")
	c.setToken(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return setAll(&retryable{err: err})
	}
	defer closeBody(resp)
	if resp.StatusCode == http.StatusNoContent {
		return errs
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, bulkErrorLimit))
	failed, code, msg := parseBulkError(raw)
	if resp.StatusCode != http.StatusInternalServerError || code != CodePublishMessage {
		if msg == "" {
			msg = "unexpected answer from the sidecar"
		}
		return setAll(&ConfigError{Status: resp.StatusCode, Code: code, Message: msg})
	}
	// The broker refused some entries (or, with no list, all of them) after
	// daprd's own resiliency; only those are retried.
	for i := range errs {
		reason, ok := failed[strconv.Itoa(i)]
		if failed != nil && !ok {
			continue
		}
		if reason == "" {
			reason = "bulk publish failed"
		}
		errs[i] = &retryable{status: resp.StatusCode, code: code,
			err: fmt.Errorf("sidecar answered %d %s for the entry: %s", resp.StatusCode, code, reason)}
	}
	return errs
}

// parseBulkError reads daprd's answer to a failed bulk publish:
// {"failedEntries":[{"entryId":"0","error":"…"}],"errorCode":"ERR_…"} for a
// broker failure, or the usual {"errorCode","message"} (or plain text) when
// the whole request was refused. failed is nil when the body lists no
// entries; it maps entry id to error message otherwise.
func parseBulkError(raw []byte) (failed map[string]string, code, msg string) {
	var b struct {
		FailedEntries []struct {
			EntryID string `json:"entryId"`
			Error   string `json:"error"`
		} `json:"failedEntries"`
		ErrorCode string `json:"errorCode"`
		Message   string `json:"message"`
	}
	if json.Unmarshal(raw, &b) != nil {
		_, msg = readError(bytes.NewReader(raw))
		return nil, "", msg
	}
	if len(b.FailedEntries) > 0 {
		failed = make(map[string]string, len(b.FailedEntries))
		for _, f := range b.FailedEntries {
			failed[f.EntryID] = f.Error
		}
	}
	msg = b.Message
	if msg == "" && len(b.FailedEntries) > 0 {
		msg = fmt.Sprintf("%d of the entries failed: %s", len(b.FailedEntries), b.FailedEntries[0].Error)
	}
	return failed, b.ErrorCode, msg
}
