package sidecar

import (
	"strconv"
	"testing"
)

func BenchmarkEncodeEvent(b *testing.B) {
	ev := NewTaskCreated("3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b", "Benchmark the publisher")
	b.ReportAllocs()
	for b.Loop() {
		_ = encodeEvent(ev)
	}
}

func BenchmarkPublishURL(b *testing.B) {
	c := New(Options{BaseURL: "http://127.0.0.1:3500", PubSubName: "pubsub", Topic: "task-events"})
	b.ReportAllocs()
	for b.Loop() {
		_ = c.publishURL("3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b")
	}
}

func BenchmarkEncodeBulk100(b *testing.B) {
	entries := make([]Entry, 100)
	for i := range entries {
		entries[i] = Entry{Event: NewTaskCreated("3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a"+strconv.Itoa(100+i), "Benchmark the publisher")}
	}
	b.ReportAllocs()
	for b.Loop() {
		if body := encodeBulk(entries); len(body) == 0 {
			b.Fatal("empty body")
		}
	}
}
