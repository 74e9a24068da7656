package harness

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisOptions choose how StartRedisWith runs redis-server.
type RedisOptions struct {
	// AOF turns on the append-only file, fsynced on every write, so that a redis-server
	// stopped and started again (Broker.Relaunch) still has every write it acknowledged.
	AOF bool
}

// StartRedis runs redis-server on a loopback port with its data in a scratch directory and
// waits until it answers PING. port 0 picks a free one.
func (h *Harness) StartRedis(ctx context.Context, port int) (*Broker, error) {
	return h.StartRedisWith(ctx, port, RedisOptions{})
}

// StartRedisWith is StartRedis with options.
func (h *Harness) StartRedisWith(ctx context.Context, port int, o RedisOptions) (*Broker, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server is not installed: run `make prereqs` (apt-get install -y redis-server)")
	}
	if port, err = OrFreePort(port); err != nil {
		return nil, err
	}
	dir := filepath.Join(h.Dir, "redis-"+strconv.Itoa(port))
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	aof := []string{"--appendonly", "no"}
	if o.AOF {
		aof = []string{"--appendonly", "yes", "--appendfsync", "always"}
	}
	args := append([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--daemonize", "no", "--protected-mode", "yes"}, aof...)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	launch := func(ctx context.Context) (*Process, error) {
		p, err := h.start("redis", environ(), bin, args...)
		if err != nil {
			return nil, err
		}
		return p, waitRedis(ctx, addr, p)
	}
	p, err := launch(ctx)
	if err != nil {
		return nil, err
	}
	return &Broker{Process: p, Name: "redis", ComponentFile: "redis.yaml",
		Overrides: map[string]string{"redisHost": addr}, relaunch: launch}, nil
}

// waitRedis waits until redis-server at addr answers PING.
func waitRedis(ctx context.Context, addr string, p *Process) error {
	// One try per poll: Poll does the retrying, and its error then names what the last
	// attempt met (connection refused, LOADING) instead of a timeout.
	rdb := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second,
		ReadTimeout: time.Second, WriteTimeout: time.Second, MaxRetries: -1, DialerRetries: 1})
	defer rdb.Close()
	err := Poll(ctx, 0, 50*time.Millisecond, func(ctx context.Context) error {
		if err := p.exitedErr("answered PING"); err != nil {
			return err
		}
		// go-redis logs every failed dial to stderr; while the port is still closed, a
		// plain connect says so quietly.
		conn, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		_ = conn.Close()
		return rdb.Ping(ctx).Err()
	})
	if err != nil {
		return fmt.Errorf("redis at %s never answered PING: %w", addr, err)
	}
	return nil
}
