package sidecar_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/taskevents/taskevents/kit/sidecar"
	"github.com/taskevents/taskevents/kit/sidecar/sidecartest"
)

const (
	taskID      = "3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b"
	traceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
)

func message(id, data string) sidecar.Message {
	return sidecar.Message{Data: []byte(data), ID: id, Type: "task.created", PartitionKey: id}
}

// closedAddr is an address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return "http://" + addr
}

func TestPublishRequest(t *testing.T) {
	body := `{"event_type":"task.created","task_id":"` + taskID + `","title":"Fish & <chips>"}`
	tests := []struct {
		name       string
		token      string
		msg        sidecar.Message
		topic      string
		wantURI    string
		wantType   string
		wantTraces [2]string
	}{
		{
			name:     "no token no trace",
			msg:      message(taskID, body),
			wantURI:  "/v1.0/publish/pubsub/task-events?metadata.cloudevent.id=" + taskID + "&metadata.cloudevent.type=task.created&metadata.partitionKey=" + taskID,
			wantType: "application/json",
		},
		{
			name:  "token and trace context",
			token: "s3cr3t",
			msg: sidecar.Message{Data: []byte(body), ID: taskID, Type: "task.created", PartitionKey: taskID,
				TraceParent: traceParent, TraceState: "congo=t61rcWkgMzE"},
			wantURI:    "/v1.0/publish/pubsub/task-events?metadata.cloudevent.id=" + taskID + "&metadata.cloudevent.type=task.created&metadata.partitionKey=" + taskID,
			wantType:   "application/json",
			wantTraces: [2]string{traceParent, "congo=t61rcWkgMzE"},
		},
		{
			name:     "topic with slash and space is escaped per segment, metadata escaped",
			msg:      message("a&b c", body),
			topic:    "orders/eu west",
			wantURI:  "/v1.0/publish/pubsub/orders/eu%20west?metadata.cloudevent.id=a%26b+c&metadata.cloudevent.type=task.created&metadata.partitionKey=a%26b+c",
			wantType: "application/json",
		},
		{
			name:     "a complete CloudEvent goes as it is, without metadata",
			msg:      sidecar.Message{Data: []byte(`{"id":"x","specversion":"1.0"}`), ContentType: "application/cloudevents+json"},
			wantURI:  "/v1.0/publish/pubsub/task-events",
			wantType: "application/cloudevents+json",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := sidecartest.New(t)
			fake.Token = tt.token
			topic := "task-events"
			if tt.topic != "" {
				topic = tt.topic
			}
			c := sidecar.New(sidecar.Options{BaseURL: fake.URL + "/", APIToken: tt.token})
			if err := c.Topic("pubsub", topic).Publish(context.Background(), tt.msg); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			got := fake.Publishes()
			if len(got) != 1 {
				t.Fatalf("publish calls = %d, want 1", len(got))
			}
			req := got[0]
			if req.Method != http.MethodPost || req.RequestURI != tt.wantURI {
				t.Errorf("request = %s %s\nwant      POST %s", req.Method, req.RequestURI, tt.wantURI)
			}
			if ct := req.Header.Get("Content-Type"); ct != tt.wantType {
				t.Errorf("Content-Type = %q, want %q", ct, tt.wantType)
			}
			if tok := req.Header.Values("dapr-api-token"); tt.token == "" && len(tok) != 0 || tt.token != "" && (len(tok) != 1 || tok[0] != tt.token) {
				t.Errorf("dapr-api-token = %q, want %q (absent when empty)", tok, tt.token)
			}
			if tp, ts := req.Header.Get("traceparent"), req.Header.Get("tracestate"); tp != tt.wantTraces[0] || ts != tt.wantTraces[1] {
				t.Errorf("traceparent, tracestate = %q, %q; want %q, %q", tp, ts, tt.wantTraces[0], tt.wantTraces[1])
			}
			if string(req.Body) != string(tt.msg.Data) {
				t.Errorf("body = %s\nwant   %s", req.Body, tt.msg.Data)
			}
		})
	}
}

// checkErr says whether err is nil ("ok"), a *ConfigError ("config") or an
// *UnavailableError ("unavailable") with the status and code wanted.
func checkErr(t *testing.T, err error, want string, status int, code string) {
	t.Helper()
	var ue *sidecar.UnavailableError
	var ce *sidecar.ConfigError
	switch want {
	case "ok":
		if err != nil {
			t.Errorf("err = %v, want nil", err)
		}
	case "taken":
		if !errors.Is(err, sidecar.ErrETagMismatch) {
			t.Errorf("err = %v, want ErrETagMismatch", err)
		}
	case "unavailable":
		if !errors.As(err, &ue) || !errors.Is(err, sidecar.ErrUnavailable) || ue.Attempts != 1 || ue.Status != status || ue.Code != code {
			t.Errorf("err = %v (%T %+v), want unavailable after 1 attempt, %d %q", err, err, ue, status, code)
		}
	case "config":
		if !errors.As(err, &ce) || errors.Is(err, sidecar.ErrUnavailable) || ce.Status != status || ce.Code != code {
			t.Errorf("err = %v (%T), want a ConfigError %d %q", err, err, status, code)
		}
	default:
		t.Fatalf("unknown want %q", want)
	}
}

func TestPublishAnswers(t *testing.T) {
	huge := sidecartest.Response{Status: 502, Body: strings.Repeat("x", 1<<20), ContentType: "text/plain"}
	tests := []struct {
		name        string
		resp        sidecartest.Response
		want        string
		wantStatus  int
		wantCode    string
		wantMessage string
	}{
		{name: "204 is success", resp: sidecartest.Published, want: "ok"},
		{name: "200 is not success", resp: sidecartest.Response{Status: 200},
			want: "config", wantStatus: 200, wantMessage: "unexpected answer from the sidecar"},
		{name: "500 publish message is worth a retry", resp: sidecartest.PublishFailed,
			want: "unavailable", wantStatus: 500, wantCode: sidecar.CodePublishMessage},
		{name: "500 with another code is not",
			resp: sidecartest.Response{Status: 500, Body: `{"errorCode":"ERR_PUBSUB_CLOUD_EVENTS_SER","message":"bad"}`},
			want: "config", wantStatus: 500, wantCode: "ERR_PUBSUB_CLOUD_EVENTS_SER", wantMessage: "bad"},
		{name: "404 not found", resp: sidecartest.NotFound,
			want: "config", wantStatus: 404, wantCode: sidecar.CodeNotFound, wantMessage: "pubsub pubsub is not found"},
		{name: "403 forbidden", resp: sidecartest.Forbidden, want: "config", wantStatus: 403, wantCode: sidecar.CodeForbidden},
		{name: "401 plain text", resp: sidecartest.Unauthorized,
			want: "config", wantStatus: 401, wantMessage: "invalid api token"},
		{name: "400 metadata", resp: sidecartest.BadMetadata, want: "config", wantStatus: 400, wantCode: "ERR_PUBSUB_REQUEST_METADATA"},
		{name: "huge unexpected body is read only in part", resp: huge,
			want: "config", wantStatus: 502, wantMessage: strings.Repeat("x", 4096)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := sidecartest.New(t)
			fake.Script(tt.resp)
			c := sidecar.New(sidecar.Options{BaseURL: fake.URL})
			err := c.Topic("pubsub", "task-events").Publish(context.Background(), message(taskID, "{}"))
			checkErr(t, err, tt.want, tt.wantStatus, tt.wantCode)
			var ce *sidecar.ConfigError
			if tt.wantMessage != "" && errors.As(err, &ce) && ce.Message != tt.wantMessage {
				t.Errorf("ConfigError.Message = %.80q (len %d), want %.80q", ce.Message, len(ce.Message), tt.wantMessage)
			}
			if n := len(fake.Publishes()); n != 1 {
				t.Errorf("publish calls = %d, want 1: the client does not retry", n)
			}
		})
	}
}

func TestPublishSidecarDown(t *testing.T) {
	c := sidecar.New(sidecar.Options{BaseURL: closedAddr(t)})
	checkErr(t, c.Topic("pubsub", "t").Publish(context.Background(), message(taskID, "{}")), "unavailable", 0, "")
	for i, err := range c.Topic("pubsub", "t").PublishBulk(context.Background(), []sidecar.Message{message("a", "{}"), message("b", "{}")}) {
		t.Run(string(rune('0'+i)), func(t *testing.T) { checkErr(t, err, "unavailable", 0, "") })
	}
}

func TestPublishBulkRequest(t *testing.T) {
	fake := sidecartest.New(t)
	fake.Token = "s3cr3t"
	c := sidecar.New(sidecar.Options{BaseURL: fake.URL, APIToken: "s3cr3t"})
	ms := []sidecar.Message{message("id-0", `{"title":"Fish & <chips>"}`), message("id-1", `{"n":1}`)}
	ms[1].TraceParent, ms[1].TraceState = traceParent, "congo=t61rcWkgMzE"
	for i, err := range c.Topic("pubsub", "a/b c").PublishBulk(context.Background(), ms) {
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
		b.Header.Get("traceparent") != "" || b.Header.Get("Content-Type") != "application/json" {
		t.Errorf("path %s, token %q, traceparent %q, Content-Type %q", b.Path, b.Header.Get("dapr-api-token"),
			b.Header.Get("traceparent"), b.Header.Get("Content-Type"))
	}
	for i, e := range b.Entries {
		id := ms[i].ID
		if string(e.Event) != string(ms[i].Data) || e.ContentType != "application/json" {
			t.Errorf("entry %d event %s (%s), want %s", i, e.Event, e.ContentType, ms[i].Data)
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

func TestPublishBulkAnswers(t *testing.T) {
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
			c := sidecar.New(sidecar.Options{BaseURL: fake.URL})
			errs := c.Topic("pubsub", "task-events").PublishBulk(context.Background(),
				[]sidecar.Message{message("a", "{}"), message("b", "{}"), message("c", "{}")})
			for i, err := range errs {
				switch tt.want[i] {
				case ok:
					checkErr(t, err, "ok", 0, "")
				case retry:
					checkErr(t, err, "unavailable", 500, sidecar.CodePublishMessage)
				case rejected:
					var ce *sidecar.ConfigError
					if !errors.As(err, &ce) || ce.Status != tt.resp.Status {
						t.Errorf("entry %d: %v, want a ConfigError %d", i, err, tt.resp.Status)
					}
				}
			}
		})
	}
}

func TestNewPoolsConnections(t *testing.T) {
	c := sidecar.New(sidecar.Options{MaxIdleConns: 256}).HTTPClient()
	tr, ok := c.Transport.(*http.Transport)
	if !ok {
		t.Fatalf("Transport is %T", c.Transport)
	}
	if tr.MaxIdleConns != 256 || tr.MaxIdleConnsPerHost != 256 || tr.Proxy != nil {
		t.Errorf("MaxIdleConns=%d MaxIdleConnsPerHost=%d Proxy set=%v; want 256, 256, false",
			tr.MaxIdleConns, tr.MaxIdleConnsPerHost, tr.Proxy != nil)
	}

	// Concurrent publishes reuse the pool instead of dialling every time
	// (with net/http's default of 2 idle connections per host, each later
	// round would dial ~18 new connections).
	fake := sidecartest.New(t)
	topic := sidecar.New(sidecar.Options{BaseURL: fake.URL}).Topic("pubsub", "task-events")
	const concurrency, rounds = 20, 4
	for range rounds {
		var wg sync.WaitGroup
		for range concurrency {
			wg.Go(func() {
				if err := topic.Publish(context.Background(), message(taskID, "{}")); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	if d := fake.Connections(); d > concurrency+10 {
		t.Errorf("%d connections for %d publishes in rounds of %d, want about %d", d, concurrency*rounds, concurrency, concurrency)
	}
}

func TestCheckOutbound(t *testing.T) {
	fake := sidecartest.New(t)
	c := sidecar.New(sidecar.Options{BaseURL: fake.URL})
	for _, tt := range []struct {
		status int
		ok     bool
	}{{204, true}, {500, false}, {200, false}} {
		fake.SetOutbound(tt.status)
		if err := c.CheckOutbound(context.Background()); (err == nil) != tt.ok {
			t.Errorf("outbound %d: err = %v, want ok=%v", tt.status, err, tt.ok)
		}
	}
	if n := fake.OutboundChecks(); n != 3 {
		t.Errorf("outbound checks = %d, want 3", n)
	}
}

func TestComponents(t *testing.T) {
	fake := sidecartest.New(t)
	fake.Token = "tok"
	fake.SetComponents("statestore", "pubsub")

	comps, err := sidecar.New(sidecar.Options{BaseURL: fake.URL, APIToken: "tok"}).Components(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(comps) != 2 || comps[1].Name != "pubsub" || comps[1].Type != "pubsub.redis" {
		t.Errorf("components = %+v", comps)
	}
	var ce *sidecar.ConfigError
	if _, err := sidecar.New(sidecar.Options{BaseURL: fake.URL, APIToken: "wrong"}).Components(context.Background()); !errors.As(err, &ce) || ce.Status != 401 {
		t.Errorf("wrong token: err = %v, want ConfigError 401", err)
	}
	if _, err := sidecar.New(sidecar.Options{BaseURL: closedAddr(t)}).Components(context.Background()); !errors.Is(err, sidecar.ErrUnavailable) {
		t.Errorf("sidecar down: err = %v, want unavailable", err)
	}
}
