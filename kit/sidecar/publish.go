package sidecar

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/taskevents/taskevents/kit/jsonstr"
)

const contentTypeJSON = "application/json"

// Message is one event to publish.
type Message struct {
	// Data is the event. A bulk publish embeds it as it is, so there it
	// must be JSON.
	Data []byte
	// ContentType defaults to application/json, which daprd wraps in a
	// CloudEvent (without it daprd would wrap the body as a text/plain
	// string); application/cloudevents+json publishes a complete CloudEvent
	// as it is, so its id, source and type survive.
	ContentType string
	// ID, Type and PartitionKey set the CloudEvent's id and type and the
	// broker's partition key (Kafka keys by it; other brokers ignore it or,
	// like Redis, pass it on); empty ones are left to daprd.
	ID, Type, PartitionKey string
	// TraceParent and TraceState join daprd's publish span, and the
	// CloudEvent's traceparent, to the caller's trace.
	TraceParent, TraceState string
}

// Topic is a topic of a pub/sub component, with its request paths built
// once: a publish then only appends its own metadata.
type Topic struct {
	c                 *Client
	publish, bulkPath string
}

// Topic returns the publishing end of pubsub's topic.
func (c *Client) Topic(pubsub, topic string) *Topic {
	target := url.PathEscape(pubsub) + "/" + escapeTopic(topic)
	return &Topic{c: c, publish: c.base + "/v1.0/publish/" + target, bulkPath: c.base + "/v1.0-alpha1/publish/bulk/" + target}
}

// escapeTopic escapes each "/"-separated segment: daprd takes the whole
// path tail as the topic, so a "/" must stay a separator.
func escapeTopic(topic string) string {
	segs := strings.Split(topic, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// Publish makes one publish call: nil once daprd answered 204, an
// *UnavailableError worth retrying (the sidecar unreachable, or the broker
// write failed: 500 ERR_PUBSUB_PUBLISH_MESSAGE), or a *ConfigError.
func (t *Topic) Publish(ctx context.Context, m Message) error {
	traceState := ""
	if m.TraceParent != "" {
		traceState = m.TraceState
	}
	resp, err := t.c.call(ctx, http.MethodPost, t.publishURL(m), m.Data, "Content-Type", cmp.Or(m.ContentType, contentTypeJSON),
		"traceparent", m.TraceParent, "tracestate", traceState)
	if err != nil {
		return err
	}
	defer closeBody(resp)
	if resp.StatusCode == http.StatusNoContent {
		return nil
	}
	code, msg := readError(resp.Body)
	if resp.StatusCode == http.StatusInternalServerError && code == CodePublishMessage {
		return &UnavailableError{Attempts: 1, Status: resp.StatusCode, Code: code,
			Err: fmt.Errorf("sidecar answered %d %s: %s", resp.StatusCode, code, msg)}
	}
	return configError(resp.StatusCode, code, msg)
}

// publishURL appends m's metadata to the topic's path by hand, in one
// allocation: url.Values would sort and allocate per key.
func (t *Topic) publishURL(m Message) string {
	id := url.QueryEscape(m.ID)
	key := id // the usual partition key is the id
	if m.PartitionKey != m.ID {
		key = url.QueryEscape(m.PartitionKey)
	}
	meta := [...]struct{ key, val string }{
		{"metadata.cloudevent.id=", id}, {"metadata.cloudevent.type=", url.QueryEscape(m.Type)}, {"metadata.partitionKey=", key},
	}
	var b strings.Builder
	b.Grow(len(t.publish) + 80 + len(id) + len(m.Type) + len(key))
	b.WriteString(t.publish)
	sep := byte('?')
	for _, kv := range meta {
		if kv.val != "" {
			b.WriteByte(sep)
			b.WriteString(kv.key)
			b.WriteString(kv.val)
			sep = '&'
		}
	}
	return b.String()
}

// bulkErrorLimit caps how much of a bulk error answer is read: daprd lists
// every failed entry with its error message, a few hundred bytes each.
const bulkErrorLimit = 1 << 20

// PublishBulk makes one call to daprd's bulk publish API with every message
// and returns one error per message, in order: nil (accepted), a
// *ConfigError (the whole request was refused), or an *UnavailableError for
// the entries the broker did not take, which are worth retrying.
//
// daprd applies each entry's own metadata to its CloudEvent, so every message
// keeps its own id, type, partition key and trace context (as
// cloudevent.traceparent: a traceparent header would give every entry the
// same parent).
func (t *Topic) PublishBulk(ctx context.Context, ms []Message) []error {
	errs := make([]error, len(ms))
	setAll := func(err error) []error {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	resp, err := t.c.call(ctx, http.MethodPost, t.bulkPath, encodeBulk(ms), "Content-Type", contentTypeJSON)
	if err != nil {
		return setAll(err)
	}
	defer closeBody(resp)
	if resp.StatusCode == http.StatusNoContent {
		return errs
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, bulkErrorLimit))
	failed, code, msg := parseBulkError(raw)
	if resp.StatusCode != http.StatusInternalServerError || code != CodePublishMessage {
		return setAll(configError(resp.StatusCode, code, msg))
	}
	// The broker refused some entries (or, with no list, all of them) after
	// daprd's own resiliency; only those are worth another try.
	for i := range errs {
		reason, ok := failed[strconv.Itoa(i)]
		if failed != nil && !ok {
			continue
		}
		errs[i] = &UnavailableError{Attempts: 1, Status: resp.StatusCode, Code: code,
			Err: fmt.Errorf("sidecar answered %d %s for the entry: %s", resp.StatusCode, code, cmp.Or(reason, "bulk publish failed"))}
	}
	return errs
}

// encodeBulk builds daprd's bulk publish body by appending rather than with
// encoding/json: a few fixed keys around strings, where reflection, a map of
// metadata per entry and re-validating every embedded event cost more than
// the rest of a bulk request's preparation. Entry ids are the indexes, unique
// within a request even when two messages share an id (an idempotent retry
// racing its original). FuzzEncodeBulk checks it against encoding/json.
func encodeBulk(ms []Message) []byte {
	n := 2
	for _, m := range ms {
		n += 160 + len(m.Data) + len(m.ContentType) + len(m.ID) + len(m.Type) + len(m.PartitionKey) +
			len(m.TraceParent) + len(m.TraceState)
	}
	b := make([]byte, 0, n)
	b = append(b, '[')
	for i, m := range ms {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"entryId":"`...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, `","event":`...)
		b = append(b, m.Data...)
		b = append(b, `,"contentType":`...)
		b = jsonstr.Append(b, cmp.Or(m.ContentType, contentTypeJSON))
		b = append(b, `,"metadata":{`...)
		state := ""
		if m.TraceParent != "" {
			state = m.TraceState
		}
		sep := ""
		for _, kv := range [...]struct{ key, val string }{{"cloudevent.id", m.ID}, {"cloudevent.type", m.Type},
			{"partitionKey", m.PartitionKey}, {"cloudevent.traceparent", m.TraceParent}, {"cloudevent.tracestate", state}} {
			if kv.val != "" {
				b = append(b, sep...)
				b = append(b, '"')
				b = append(b, kv.key...)
				b = append(b, `":`...)
				b = jsonstr.Append(b, kv.val)
				sep = ","
			}
		}
		b = append(b, "}}"...)
	}
	return append(b, ']')
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
		_, msg = parseError(raw[:min(len(raw), errorBodyLimit)])
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
