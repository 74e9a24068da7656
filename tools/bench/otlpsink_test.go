package bench

import (
	"net/http"
	"strings"
	"testing"
)

func TestOTLPSink(t *testing.T) {
	s, err := startOTLPSink(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	resp, err := http.Post(s.url+"/v1/traces", "application/x-protobuf", strings.NewReader("spans"))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-protobuf" {
		t.Errorf("export answered %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if resp, err := http.Get(s.url + "/v1/traces"); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /v1/traces: %v %v", resp, err)
	} else {
		_ = resp.Body.Close()
	}
	if s.requests.Load() != 1 || s.bytes.Load() != 5 {
		t.Errorf("sink counted %d requests, %d bytes", s.requests.Load(), s.bytes.Load())
	}
}
