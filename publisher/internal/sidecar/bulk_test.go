package sidecar_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"testing"

	"github.com/taskevents/taskevents/publisher/internal/sidecar"
	"github.com/taskevents/taskevents/publisher/internal/sidecar/sidecartest"
)

func entries(ids ...string) []sidecar.Entry {
	out := make([]sidecar.Entry, len(ids))
	for i, id := range ids {
		out[i] = sidecar.Entry{Event: sidecar.NewTaskCreated(id, "Fish & <chips> "+id)}
	}
	return out
}

func TestPublishBulkRequest(t *testing.T) {
	fake := sidecartest.New(t)
	fake.Token = "s3cr3t"
	c, _ := newClient(fake.URL, func(o *sidecar.Options) { o.APIToken = "s3cr3t"; o.Topic = "a/b c" })
	es := entries("id-0", "id-1")
	es[1].Trace = sidecar.TraceContext{TraceParent: traceParent, TraceState: "congo=t61rcWkgMzE"}
	for i, err := range c.PublishBulk(context.Background(), es) {
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
	bulks := fake.BulkPublishes()
	if len(bulks) != 1 {
		t.Fatalf("bulk publishes = %d, want 1", len(bulks))
	}
	b := bulks[0]
	if b.Path != "/v1.0-alpha1/publish/bulk/pubsub/a/b%20c" || b.Header.Get("dapr-api-token") != "s3cr3t" ||
		b.Header.Get("traceparent") != "" {
		t.Errorf("path %s, token %q, traceparent %q", b.Path, b.Header.Get("dapr-api-token"), b.Header.Get("traceparent"))
	}
	for i, e := range b.Entries {
		id := es[i].Event.TaskID
		var ev sidecar.TaskCreated
		if err := json.Unmarshal(e.Event, &ev); err != nil || ev != es[i].Event {
			t.Errorf("entry %d event %s (%v), want %+v", i, e.Event, err, es[i].Event)
		}
		if e.Metadata["cloudevent.id"] != id || e.Metadata["cloudevent.type"] != "task.created" || e.Metadata["partitionKey"] != id {
			t.Errorf("entry %d metadata %v, want its own id, type and partition key", i, e.Metadata)
		}
	}
	if md := b.Entries[1].Metadata; md["cloudevent.traceparent"] != traceParent || md["cloudevent.tracestate"] != "congo=t61rcWkgMzE" {
		t.Errorf("entry 1 metadata %v, want its own trace context", md)
	}
	if _, ok := b.Entries[0].Metadata["cloudevent.traceparent"]; ok {
		t.Error("an entry without trace context got a traceparent")
	}
}

func TestPublishBulkOutcomes(t *testing.T) {
	const ok, retry, rejected = "ok", "retry", "rejected"
	tests := []struct {
		name string
		resp sidecartest.Response
		want []string
	}{
		{"all published", sidecartest.Published, []string{ok, ok, ok}},
		{"some entries failed", sidecartest.FailEntries("0", "2"), []string{retry, ok, retry}},
		{"unknown entry ids are ignored", sidecartest.FailEntries("1", "7"), []string{ok, retry, ok}},
		{"broker failure without a list", sidecartest.PublishFailed, []string{retry, retry, retry}},
		{"forbidden topic", sidecartest.Forbidden, []string{rejected, rejected, rejected}},
		{"no such component", sidecartest.NotFound, []string{rejected, rejected, rejected}},
		{"wrong token", sidecartest.Unauthorized, []string{rejected, rejected, rejected}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := sidecartest.New(t)
			fake.ScriptBulk(func([]sidecartest.BulkEntry) sidecartest.Response { return tt.resp })
			c, _ := newClient(fake.URL, nil)
			errs := c.PublishBulk(context.Background(), entries("a", "b", "c"))
			for i, err := range errs {
				var ce *sidecar.ConfigError
				got := retry
				switch {
				case err == nil:
					got = ok
				case errors.As(err, &ce):
					got = rejected
					if ce.Status != tt.resp.Status {
						t.Errorf("entry %d: status %d, want %d", i, ce.Status, tt.resp.Status)
					}
				}
				if got != tt.want[i] {
					t.Errorf("entry %d: %v (%s), want %s", i, err, got, tt.want[i])
				}
			}
		})
	}
}

func TestPublishBulkSidecarDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	c, _ := newClient("http://"+addr, nil)
	for i, err := range c.PublishBulk(context.Background(), entries("a", "b")) {
		var ce *sidecar.ConfigError
		if err == nil || errors.As(err, &ce) {
			t.Errorf("entry %d: %v, want an error worth retrying", i, err)
		}
	}
}
