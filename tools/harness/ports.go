package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// FreePort asks the kernel for a free loopback port. Another process could take it before
// it is used; the harness binds it within milliseconds, which is good enough on loopback.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// PortFree reports whether something already listens on the loopback port.
func PortFree(port int) bool {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

// OrFreePort returns port, or a free one when port is 0.
func OrFreePort(port int) (int, error) {
	if port != 0 {
		return port, nil
	}
	return FreePort()
}

// WaitHTTP polls url until it answers want or ctx ends.
func WaitHTTP(ctx context.Context, url string, want int) error {
	return pollHTTP(ctx, &http.Client{Timeout: 2 * time.Second}, url, nil, want, 50*time.Millisecond)
}

// pollHTTP GETs url with header every interval until it answers want or ctx ends.
func pollHTTP(ctx context.Context, client *http.Client, url string, header http.Header, want int, interval time.Duration) error {
	err := Poll(ctx, 0, interval, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return Stop(err)
		}
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != want {
			return errors.New(resp.Status)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("GET %s never answered %d: %w", url, want, err)
	}
	return nil
}
