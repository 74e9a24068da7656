package server

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/taskevents/taskevents/kit/sidecar"
	"github.com/taskevents/taskevents/kit/sidecar/sidecartest"
	"github.com/taskevents/taskevents/kit/tracing"
	"github.com/taskevents/taskevents/worker/internal/dedupe"
	"github.com/taskevents/taskevents/worker/internal/handler"
	"github.com/taskevents/taskevents/worker/internal/metrics"
)

// BenchmarkHandleEvent measures one delivery through the whole HTTP handler:
// body read, CloudEvent parse, dedupe claim, default handler, log line (to
// io.Discard), metrics and reply. Every iteration is a new event id.
func BenchmarkHandleEvent(b *testing.B) {
	srv := New(Deps{
		Logger:         zerolog.New(io.Discard).With().Timestamp().Logger(),
		Handler:        handler.Accept{},
		Ledger:         dedupe.New(100_000, time.Hour, time.Now),
		Metrics:        metrics.New(),
		MaxEventBytes:  1 << 20,
		HandlerTimeout: 10 * time.Second,
	})
	prefix, suffix, ok := bytes.Cut([]byte(daprdEnvelope), []byte(eventID))
	if !ok {
		b.Fatal("envelope has no id")
	}
	body := make([]byte, 0, len(daprdEnvelope)+20)
	b.ReportAllocs()
	b.SetBytes(int64(len(daprdEnvelope)))
	var i int
	for b.Loop() {
		i++
		body = append(strconv.AppendInt(append(body[:0], prefix...), int64(i), 10), suffix...)
		req := httptest.NewRequest(http.MethodPost, "/events/todo", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/cloudevents+json")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || !bytes.Contains(rec.Body.Bytes(), []byte("SUCCESS")) {
			b.Fatalf("reply %d %s", rec.Code, rec.Body)
		}
	}
}

// BenchmarkHandleEventStateLedger is BenchmarkHandleEvent on the durable ledger, against
// the fake sidecar (its own cost included): the three state calls per event.
func BenchmarkHandleEventStateLedger(b *testing.B) {
	fake := sidecartest.New(b)
	client := sidecar.New(sidecar.Options{BaseURL: fake.URL, Timeout: 5 * time.Second})
	srv := New(Deps{
		Logger:         zerolog.New(io.Discard).With().Timestamp().Logger(),
		Handler:        handler.Accept{},
		Ledger:         dedupe.NewStateLedger(client, "statestore", 15*time.Second, time.Hour, time.Now),
		Metrics:        metrics.New(),
		MaxEventBytes:  1 << 20,
		HandlerTimeout: 10 * time.Second,
	})
	prefix, suffix, ok := bytes.Cut([]byte(daprdEnvelope), []byte(eventID))
	if !ok {
		b.Fatal("envelope has no id")
	}
	b.ReportAllocs()
	var i int
	for b.Loop() {
		i++
		body := append(strconv.AppendInt(append([]byte{}, prefix...), int64(i), 10), suffix...)
		req := httptest.NewRequest(http.MethodPost, "/events/todo", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/cloudevents+json")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || !bytes.Contains(rec.Body.Bytes(), []byte("SUCCESS")) {
			b.Fatalf("reply %d %s", rec.Code, rec.Body)
		}
	}
}

// BenchmarkHandleBatch measures a bulk delivery of 100 new events through the
// whole HTTP handler, BULK_CONCURRENCY at its default, with tracing off and
// on; an op is one batch.
func BenchmarkHandleBatch(b *testing.B) {
	for _, mode := range []string{"off", "on"} {
		b.Run(mode, func(b *testing.B) {
			srv := benchServer(b, mode == "on")
			entries := make([]entry, 100)
			b.ReportAllocs()
			var n int
			for b.Loop() {
				for i := range entries {
					n++
					entries[i] = entry{id: strconv.Itoa(i), event: task(b, n, "bench")}
				}
				req := httptest.NewRequest(http.MethodPost, "/events/todo", strings.NewReader(batchBody(b, entries...)))
				req.Header.Set("Content-Type", "application/json")
				rec := httptest.NewRecorder()
				srv.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK || bytes.Count(rec.Body.Bytes(), []byte(`"SUCCESS"`)) != len(entries) {
					b.Fatalf("reply %d %s", rec.Code, rec.Body)
				}
			}
		})
	}
}

// benchServer is the whole HTTP handler on the in-memory ledger with the
// default handler, BULK_CONCURRENCY at its default, and tracing off or on
// (the real SDK, a batch processor, an exporter that drops the spans).
func benchServer(b *testing.B, traced bool) http.Handler {
	o := tracing.Options{ServiceName: "taskevents-worker"}
	if traced {
		o.Exporter = tracetest.NewNoopExporter()
	}
	tr, err := tracing.New(context.Background(), nil, o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	return New(Deps{
		Logger:          zerolog.New(io.Discard).With().Timestamp().Logger(),
		Handler:         handler.Accept{},
		Ledger:          dedupe.New(100_000, time.Hour, time.Now),
		Metrics:         metrics.New(),
		MaxEventBytes:   1 << 20,
		MaxBatchBytes:   4 << 20,
		BulkConcurrency: 48,
		HandlerTimeout:  10 * time.Second,
		Tracing:         tr,
	})
}
