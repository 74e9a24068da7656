package taskevent

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/taskevents/taskevents/worker/internal/taskevent/eventtest"
)

// BenchmarkParse is the worker's parse of one daprd delivery: the CloudEvents SDK's
// structured-mode reader plus the task checks.
func BenchmarkParse(b *testing.B) {
	header := http.Header{"Content-Type": {"application/cloudevents+json"}}
	body := []byte(eventtest.DaprdEnvelope)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := Parse(header, body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseStdlib is the baseline beside BenchmarkParse: plain encoding/json into a
// struct holding the fields the worker reads, with the same task checks, and none of the
// CloudEvents validation (spec version, required attributes, extension types, data
// content types, binary mode) the SDK does.
func BenchmarkParseStdlib(b *testing.B) {
	body := []byte(eventtest.DaprdEnvelope)
	type envelope struct {
		ID          string `json:"id"`
		Source      string `json:"source"`
		Type        string `json:"type"`
		SpecVersion string `json:"specversion"`
		Topic       string `json:"topic"`
		PubsubName  string `json:"pubsubname"`
		Traceparent string `json:"traceparent"`
		Data        Task   `json:"data"`
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		var e envelope
		if err := json.Unmarshal(body, &e); err != nil {
			b.Fatal(err)
		}
		if e.SpecVersion != "1.0" || e.ID == "" || e.Type != TypeTaskCreated || !IsUUID(e.Data.TaskID) || e.Data.Title == "" {
			b.Fatal("invalid")
		}
	}
}
