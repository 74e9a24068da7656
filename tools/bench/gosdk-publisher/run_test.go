package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	pb "github.com/dapr/dapr/pkg/proto/runtime/v1"
	dapr "github.com/dapr/go-sdk/client"
)

// fakePublisher records what the handler asked the go-sdk to publish, applying the options
// to a request the way the go-sdk does.
type fakePublisher struct {
	err  error
	data any
	req  *pb.PublishEventRequest
}

func (f *fakePublisher) PublishEvent(_ context.Context, pubsub, topic string, data interface{}, opts ...dapr.PublishEventOption) error {
	f.data = data
	f.req = &pb.PublishEventRequest{PubsubName: pubsub, Topic: topic}
	for _, o := range opts {
		o(f.req)
	}
	return f.err
}

func TestCreateTask(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		pubErr     error
		wantStatus int
	}{
		{"valid", `{"title":"Buy milk"}`, nil, 202},
		{"200 characters", `{"title":"` + strings.Repeat("é", 200) + `"}`, nil, 202},
		{"201 characters", `{"title":"` + strings.Repeat("é", 201) + `"}`, nil, 422},
		{"blank", `{"title":"  "}`, nil, 422},
		{"missing", `{}`, nil, 422},
		{"malformed", `{"title":`, nil, 400},
		{"publish fails", `{"title":"Buy milk"}`, errors.New("unavailable"), 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakePublisher{err: tt.pubErr}
			srv := httptest.NewServer(createTask(f, slog.New(slog.NewJSONHandler(io.Discard, nil))))
			defer srv.Close()
			resp, err := http.Post(srv.URL, "application/json", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if tt.wantStatus != 202 {
				return
			}
			var got created
			if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
				t.Fatal(err)
			}
			ev, ok := f.data.(taskCreated)
			if !ok || ev.TaskID != got.ID || ev.EventType != "task.created" || ev.Title != got.Title || got.Event != "published" {
				t.Fatalf("published %#v, answered %#v", f.data, got)
			}
			md := f.req.GetMetadata()
			if f.req.GetPubsubName() != "pubsub" || f.req.GetTopic() != "task-events" || f.req.GetDataContentType() != "application/json" ||
				md["cloudevent.id"] != got.ID || md["cloudevent.type"] != "task.created" || md["partitionKey"] != got.ID {
				t.Fatalf("publish request %v", f.req)
			}
		})
	}
}

func TestLoadConfig(t *testing.T) {
	c, err := loadConfig([]string{"APP_PORT=9000", "DAPR_GRPC_PORT=50009", "DAPR_API_TOKEN=s3cret"})
	if err != nil || c.port != 9000 || c.daprAddr != "127.0.0.1:50009" || c.token != "s3cret" {
		t.Fatalf("%+v %v", c, err)
	}
	c, err = loadConfig([]string{"DAPR_GRPC_ENDPOINT=localhost:1234", "DAPR_GRPC_PORT=nonsense"})
	if err != nil || c.daprAddr != "localhost:1234" || c.port != 8000 {
		t.Fatalf("the endpoint wins over the port: %+v %v", c, err)
	}
	for _, bad := range []string{"APP_PORT=http", "APP_PORT=0", "DAPR_GRPC_PORT=70000"} {
		name, _, _ := strings.Cut(bad, "=")
		if _, err := loadConfig([]string{bad}); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %v does not name %s", bad, err, name)
		}
	}
}
