package harness

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// Broker is a running message broker and the component metadata that points Dapr at it.
type Broker struct {
	*Process
	Name string
	// ComponentFile is the file under components/ describing this broker for the cluster.
	ComponentFile string
	// Overrides replace component metadata values for the local run (host names, ports).
	Overrides map[string]string
	// WaitSubscribers, when not nil, waits until replicas subscribers of appID share the
	// topics as the broker will deliver to them (Kafka: the consumer group has rebalanced
	// and every member holds partitions; SNS: each topic delivers to the app's SQS queue,
	// without which SNS drops what is published). Brokers that hand each message to
	// whichever subscriber asks next need no wait.
	WaitSubscribers func(ctx context.Context, appID string, replicas int) error

	// relaunch starts the broker again on the same port and data directory (Relaunch).
	relaunch func(ctx context.Context) (*Process, error)
}

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

func waitRedis(ctx context.Context, addr string, p *Process) error {
	for {
		if exited, _ := p.Exited(); exited {
			return fmt.Errorf("redis-server exited:\n%s", p.Tail(20))
		}
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = conn.SetDeadline(time.Now().Add(time.Second))
			_, _ = conn.Write([]byte("PING\r\n"))
			line, rerr := bufio.NewReader(conn).ReadString('\n')
			_ = conn.Close()
			if rerr == nil && line == "+PONG\r\n" {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("redis at %s never answered PING: %w", addr, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
