// Package taskevent turns what daprd delivers (a CloudEvent, structured or
// binary) into a validated task event, or says precisely why it cannot.
//
// Every failure here is permanent: the same bytes will fail the same way on
// redelivery, so the caller answers DROP and daprd dead-letters the message.
package taskevent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/binding/format"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/google/uuid"

	"github.com/taskevents/taskevents/kit/logging"
)

// Event types the worker understands.
const (
	TypeTaskCreated = "task.created"
	// TypeDaprDefault is what daprd puts in "type" when the publisher did not
	// override it; the real type is then in data.event_type.
	TypeDaprDefault = "com.dapr.event.sent"
)

// Task is the payload the publisher puts in the CloudEvent's data.
type Task struct {
	EventType string `json:"event_type"`
	TaskID    string `json:"task_id"`
	Title     string `json:"title"`
}

// Meta is what the envelope says about a delivery. In an Error it holds
// whatever could be read, so a rejected message can still be traced.
type Meta struct {
	ID          string
	Source      string
	Type        string
	Topic       string
	PubsubName  string
	Traceparent string
}

// Event is a delivery that passed every check.
type Event struct {
	Meta
	DataContentType string
	// EventType is the type the worker acted on: Type, or data.event_type
	// when Type is the Dapr default.
	EventType string
	Task      Task
}

// Key identifies one published event across redeliveries. CloudEvent ids are
// only unique per source, and daprd reuses them per topic, so the key is
// scoped by the component and the topic.
func (e Event) Key() string {
	return e.PubsubName + "/" + e.Topic + "/" + e.ID
}

// Stage says how far parsing got.
type Stage int

const (
	// StageEnvelope means the bytes are not a valid CloudEvent.
	StageEnvelope Stage = iota + 1
	// StageData means a valid CloudEvent whose data is not a valid task event.
	StageData
)

// Error is the only error Parse returns.
type Error struct {
	Stage  Stage
	Reason string
	Meta   Meta
	Task   Task
	Err    error
}

func (e *Error) Error() string {
	if e.Err != nil {
		// Some SDK errors end in a newline; log lines should not.
		return logging.Truncate(e.Reason+": "+strings.TrimSpace(e.Err.Error()), maxReason)
	}
	return logging.Truncate(e.Reason, maxReason)
}

// maxReason bounds an error message: it is logged as the reason, and SDK
// errors quote the sender's input, which may be up to MAX_EVENT_BYTES.
const maxReason = 512

func (e *Error) Unwrap() error { return e.Err }

// Parse reads a delivery. header is the request's header (it decides between
// structured and binary mode); body is the whole, already size-capped, body.
func Parse(header http.Header, body []byte) (ev Event, err error) {
	defer func() {
		// The CloudEvents SDK parses hostile input; a bug there must cost one
		// message, not the process.
		if r := recover(); r != nil {
			ev = Event{}
			err = envelopeError(header, body, "CloudEvent could not be parsed", fmt.Errorf("parser panic: %v", r))
		}
	}()

	ce, err := decode(header, body)
	if err != nil {
		return Event{}, err
	}
	meta := metaOf(ce, header)
	if err := ce.Validate(); err != nil {
		_, task := Peek(header, body)
		return Event{}, &Error{Stage: StageEnvelope, Reason: "invalid CloudEvent", Meta: meta, Task: task, Err: err}
	}

	// ce.Data() is the JSON value for application/json, the unquoted string
	// for text/plain and the decoded bytes for data_base64, so one Unmarshal
	// covers every way a publisher may have sent the task.
	var task Task
	if err := json.Unmarshal(ce.Data(), &task); err != nil {
		return Event{}, &Error{Stage: StageData, Reason: "data is not a task JSON object", Meta: meta, Err: err}
	}
	evType := ce.Type()
	if evType == TypeDaprDefault {
		evType = task.EventType
	}
	if evType != TypeTaskCreated {
		return Event{}, &Error{Stage: StageData, Reason: fmt.Sprintf("unknown event type %q", logging.Truncate(evType, 64)), Meta: meta, Task: task}
	}
	if !IsUUID(task.TaskID) {
		return Event{}, &Error{Stage: StageData, Reason: fmt.Sprintf("task_id %q is not a UUID", logging.Truncate(task.TaskID, 64)), Meta: meta, Task: task}
	}
	if strings.TrimSpace(task.Title) == "" {
		return Event{}, &Error{Stage: StageData, Reason: "title is blank", Meta: meta, Task: task}
	}
	return Event{Meta: meta, DataContentType: ce.DataContentType(), EventType: evType, Task: task}, nil
}

// IsUUID accepts only the canonical 36-character form the publisher emits;
// uuid.Parse alone also takes braces, urn: prefixes and hex without dashes.
func IsUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	_, err := uuid.Parse(s)
	return err == nil
}

func decode(header http.Header, body []byte) (*event.Event, error) {
	f := format.Lookup(header.Get("Content-Type"))
	switch {
	case f == format.JSONBatch:
		return nil, envelopeError(header, body, "batched CloudEvents are not supported", nil)
	case f == nil && header.Get("Ce-Specversion") != "":
		msg := cehttp.NewMessage(header, io.NopCloser(bytes.NewReader(body)))
		ce, err := binding.ToEvent(context.Background(), msg)
		if err != nil {
			return nil, envelopeError(header, body, "invalid binary-mode CloudEvent", err)
		}
		return ce, nil
	default:
		// Structured mode. A missing or plain JSON Content-Type is accepted too,
		// so the route can be tried with curl; daprd always sends
		// application/cloudevents+json.
		//
		// The SDK's lenient JSON reader accepts some non-JSON (trailing bytes),
		// so check strictly first.
		if !json.Valid(body) {
			return nil, envelopeError(header, body, "body is not valid JSON", nil)
		}
		var ce event.Event
		if err := json.Unmarshal(body, &ce); err != nil {
			return nil, envelopeError(header, body, "body is not a CloudEvent", err)
		}
		return &ce, nil
	}
}

// envelopeError carries whatever Peek can still read, so the rejection can
// be traced to a publish.
func envelopeError(header http.Header, body []byte, reason string, err error) *Error {
	meta, task := Peek(header, body)
	return &Error{Stage: StageEnvelope, Reason: reason, Meta: meta, Task: task, Err: err}
}

func metaOf(ce *event.Event, header http.Header) Meta {
	m := Meta{
		ID:          ce.ID(),
		Source:      ce.Source(),
		Type:        ce.Type(),
		Topic:       extString(ce, "topic"),
		PubsubName:  extString(ce, "pubsubname"),
		Traceparent: extString(ce, "traceparent"),
	}
	m.withHeaders(header)
	return m
}

// withHeaders takes what daprd also sends as plain headers when the envelope
// lacks it (binary mode, hand-built CloudEvents).
func (m *Meta) withHeaders(header http.Header) {
	if m.PubsubName == "" {
		m.PubsubName = header.Get("pubsubname")
	}
	if m.Traceparent == "" {
		m.Traceparent = header.Get("traceparent")
	}
}

func extString(ce *event.Event, name string) string {
	v, ok := ce.Extensions()[name]
	if !ok {
		return ""
	}
	s, err := types.ToString(v)
	if err != nil {
		return ""
	}
	return s
}
