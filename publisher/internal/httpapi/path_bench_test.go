package httpapi_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/taskevents/taskevents/kit/sidecar"
	"github.com/taskevents/taskevents/publisher/internal/httpapi"
	"github.com/taskevents/taskevents/publisher/internal/publish"
)

// BenchmarkSidecarPath is POST /tasks through the whole publish path
// (coalescing on, as by default) to a local server that answers 204: the
// request path's allocations, the sidecar call included.
func BenchmarkSidecarPath(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	client := sidecar.New(sidecar.Options{BaseURL: srv.URL})
	defer client.Close()
	pub := publish.New(client.Topic("pubsub", "task-events"), publish.Options{PubSubName: "pubsub", Topic: "task-events",
		MaxBatch: 100, MaxInFlight: 2, PublishTimeout: 5 * time.Second, Logger: zerolog.Nop()})
	defer pub.Close()
	h := httpapi.New(httpapi.Deps{Publisher: pub, Logger: zerolog.Nop(), MaxTitleLength: 200})
	body := []byte(`{"title":"Benchmark the publisher"}`)
	do := func(b *testing.B) {
		req := httptest.NewRequest(http.MethodPost, "/tasks", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusAccepted {
			b.Errorf("status = %d: %s", rec.Code, rec.Body)
		}
	}
	b.Run("lone", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			do(b)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				do(b)
			}
		})
	})
}
