package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	dapr "github.com/dapr/go-sdk/client"
	"github.com/google/uuid"
)

const (
	pubsubName     = "pubsub"
	topicName      = "task-events"
	eventType      = "task.created"
	maxTitle       = 200 // code points, as the publisher's MAX_TITLE_LENGTH default
	maxBody        = 64 << 10
	publishTimeout = 5 * time.Second // the publisher's PUBLISH_TIMEOUT default
)

// taskCreated is the publisher's event payload, field for field.
type taskCreated struct {
	EventType string `json:"event_type"`
	TaskID    string `json:"task_id"`
	Title     string `json:"title"`
}

type created struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	Event string `json:"event"`
}

type config struct {
	port     int
	daprAddr string // host:port of daprd's gRPC API
	token    string
}

// loadConfig reads APP_PORT, DAPR_GRPC_ENDPOINT or DAPR_GRPC_PORT, and DAPR_API_TOKEN, the
// variables the go-sdk's own NewClient reads, but from environ rather than the process.
func loadConfig(environ []string) (config, error) {
	get := func(k string) string {
		for _, kv := range environ {
			if v, ok := strings.CutPrefix(kv, k+"="); ok {
				return v
			}
		}
		return ""
	}
	port := func(name, def string) (int, error) {
		s := get(name)
		if s == "" {
			s = def
		}
		p, err := strconv.Atoi(s)
		if err != nil || p < 1 || p > 65535 {
			return 0, fmt.Errorf("%s must be a port number (1-65535), got %q", name, s)
		}
		return p, nil
	}
	var c config
	var err error
	if c.port, err = port("APP_PORT", "8000"); err != nil {
		return c, err
	}
	c.daprAddr = get("DAPR_GRPC_ENDPOINT")
	if c.daprAddr == "" {
		p, err := port("DAPR_GRPC_PORT", "50001")
		if err != nil {
			return c, err
		}
		c.daprAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	}
	c.token = get("DAPR_API_TOKEN")
	return c, nil
}

func run(ctx context.Context, environ []string, stdout io.Writer) error {
	cfg, err := loadConfig(environ)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stdout, nil))

	// The go-sdk dials with grpc.WithBlock: this waits (DAPR_CLIENT_TIMEOUT_SECONDS, 5 s by
	// default) for daprd's gRPC port, so start daprd first.
	client, err := dapr.NewClientWithAddressContext(ctx, cfg.daprAddr)
	if err != nil {
		return fmt.Errorf("connect to daprd at %s (DAPR_GRPC_ENDPOINT / DAPR_GRPC_PORT): %w", cfg.daprAddr, err)
	}
	defer client.Close()
	if cfg.token != "" {
		client.WithAuthToken(cfg.token)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.Handle("POST /tasks", createTask(client, log))
	srv := &http.Server{
		Addr:              net.JoinHostPort("127.0.0.1", strconv.Itoa(cfg.port)),
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      publishTimeout + 5*time.Second,
		IdleTimeout:       60 * time.Second,
	}
	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", srv.Addr)
	if err != nil {
		return fmt.Errorf("listen on APP_PORT %d: %w", cfg.port, err)
	}
	log.Info("listening", "addr", ln.Addr().String(), "dapr_grpc", cfg.daprAddr)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// publisher is the part of the go-sdk client the handler uses.
type publisher interface {
	PublishEvent(ctx context.Context, pubsubName, topicName string, data interface{}, opts ...dapr.PublishEventOption) error
}

func createTask(client publisher, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Title *string `json:"title"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&in); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"detail": "the body is not a JSON object: " + err.Error()})
			return
		}
		if in.Title == nil || strings.TrimSpace(*in.Title) == "" {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"detail": "title is required and must not be blank"})
			return
		}
		if n := utf8.RuneCountInString(*in.Title); n > maxTitle {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"detail": fmt.Sprintf("title must be at most %d characters, got %d", maxTitle, n)})
			return
		}
		id := uuid.NewString()
		ctx, cancel := context.WithTimeout(r.Context(), publishTimeout)
		defer cancel()
		err := client.PublishEvent(ctx, pubsubName, topicName,
			taskCreated{EventType: eventType, TaskID: id, Title: *in.Title},
			dapr.PublishEventWithContentType("application/json"),
			dapr.PublishEventWithMetadata(map[string]string{
				"cloudevent.id":   id,
				"cloudevent.type": eventType,
				"partitionKey":    id,
			}))
		if err != nil {
			log.Warn("task event not published", "task_id", id, "topic", topicName, "error", err.Error())
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"detail": "the Dapr sidecar did not accept the event; the task was NOT published"})
			return
		}
		writeJSON(w, http.StatusAccepted, created{ID: id, Title: *in.Title, Event: "published"})
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
