package taskevent

import (
	"encoding/base64"
	"encoding/json"
	"net/http"

	"github.com/taskevents/taskevents/kit/logging"
)

// maxPeekField bounds what Peek copies out of an untrusted message, because
// it ends up in log lines.
const maxPeekField = 256

// lenientEnvelope takes every field as raw JSON so that a field of the wrong
// type costs that field only.
type lenientEnvelope struct {
	ID          json.RawMessage `json:"id"`
	Source      json.RawMessage `json:"source"`
	Type        json.RawMessage `json:"type"`
	Topic       json.RawMessage `json:"topic"`
	PubsubName  json.RawMessage `json:"pubsubname"`
	Traceparent json.RawMessage `json:"traceparent"`
	Data        json.RawMessage `json:"data"`
	DataBase64  json.RawMessage `json:"data_base64"`
}

func isBinary(header http.Header) bool {
	return header.Get("Ce-Specversion") != "" && header.Get("Ce-Id") != ""
}

// Peek reads whatever ids and task fields it can from a message without
// validating anything. It is for logging messages that are rejected or
// dead-lettered: it never fails, it only returns less.
func Peek(header http.Header, body []byte) (Meta, Task) {
	var m Meta
	var data []byte
	if isBinary(header) {
		m = Meta{ID: header.Get("Ce-Id"), Source: header.Get("Ce-Source"), Type: header.Get("Ce-Type"),
			Topic: header.Get("Ce-Topic"), PubsubName: header.Get("Ce-Pubsubname"), Traceparent: header.Get("Ce-Traceparent")}
		data = body
	} else if env := (lenientEnvelope{}); json.Unmarshal(body, &env) == nil {
		m = Meta{ID: rawString(env.ID), Source: rawString(env.Source), Type: rawString(env.Type),
			Topic: rawString(env.Topic), PubsubName: rawString(env.PubsubName), Traceparent: rawString(env.Traceparent)}
		data = env.taskData()
	}
	m.withHeaders(header)
	for _, f := range []*string{&m.ID, &m.Source, &m.Type, &m.Topic, &m.PubsubName, &m.Traceparent} {
		*f = logging.Truncate(*f, maxPeekField)
	}
	var raw struct {
		EventType json.RawMessage `json:"event_type"`
		TaskID    json.RawMessage `json:"task_id"`
		Title     json.RawMessage `json:"title"`
	}
	if json.Unmarshal(data, &raw) != nil {
		return m, Task{}
	}
	return m, Task{
		EventType: logging.Truncate(rawString(raw.EventType), maxPeekField),
		TaskID:    logging.Truncate(rawString(raw.TaskID), maxPeekField),
		Title:     logging.Truncate(rawString(raw.Title), maxPeekField),
	}
}

// taskData is what should hold the task JSON: data, the string in data
// (text/plain data is a JSON string holding the task JSON), or data_base64
// decoded.
func (env *lenientEnvelope) taskData() []byte {
	var s string
	switch {
	case len(env.Data) > 0 && json.Unmarshal(env.Data, &s) == nil:
		return []byte(s)
	case len(env.Data) > 0:
		return env.Data
	case json.Unmarshal(env.DataBase64, &s) == nil:
		b, err := base64.StdEncoding.DecodeString(s)
		if err == nil {
			return b
		}
	}
	return nil
}

func rawString(r json.RawMessage) string {
	var s string
	if json.Unmarshal(r, &s) != nil {
		return ""
	}
	return s
}
