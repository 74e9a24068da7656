package harness

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// rabbitmqScripts is where Debian's rabbitmq-server package keeps the real start script;
// /usr/sbin/rabbitmq-server is a wrapper that insists on /var/lib/rabbitmq and the
// packaged node's log files, so the harness calls the script itself.
const rabbitmqScripts = "/usr/lib/rabbitmq/bin"

// StartRabbitMQ runs a RabbitMQ node from Debian's rabbitmq-server package on loopback: its
// own node name, AMQP and distribution ports, its own epmd on a free port (so no epmd
// daemon outlives the harness), data and logs in a scratch directory, no plugins. It waits
// until an AMQP client can open a connection with the broker's credentials. port 0 picks
// a free one.
func (h *Harness) StartRabbitMQ(ctx context.Context, port int) (*Broker, error) {
	return h.startRabbitMQ(ctx, port, "127.0.0.1", "", "")
}

// StartRabbitMQOn is StartRabbitMQ listening on ip (for clients in other network
// namespaces, such as pods) with username/password as its own user instead of loopback-only guest.
func (h *Harness) StartRabbitMQOn(ctx context.Context, ip, username, password string) (*Broker, error) {
	return h.startRabbitMQ(ctx, 0, ip, username, password)
}

func (h *Harness) startRabbitMQ(ctx context.Context, port int, ip, username, password string) (*Broker, error) {
	server := filepath.Join(rabbitmqScripts, "rabbitmq-server")
	if _, err := os.Stat(server); err != nil {
		return nil, fmt.Errorf("rabbitmq-server is not installed: run `make prereqs` (apt-get install -y rabbitmq-server)")
	}
	epmd, err := exec.LookPath("epmd")
	if err != nil {
		return nil, fmt.Errorf("epmd (erlang-base, a dependency of rabbitmq-server) is not installed: run `make prereqs`")
	}
	if port, err = OrFreePort(port); err != nil {
		return nil, err
	}
	var epmdPort, distPort int
	for _, p := range []*int{&epmdPort, &distPort} {
		if *p, err = FreePort(); err != nil {
			return nil, err
		}
	}

	// As root, the node runs as the package's rabbitmq user (as Debian's wrapper does), so
	// its directories must belong to that user and be reachable by it: they live in their
	// own directory under the system temp dir, not under Dir (a test's 0700 temp dir).
	var cred *syscall.Credential
	uid, gid := -1, -1
	if os.Geteuid() == 0 {
		u, err := user.Lookup("rabbitmq")
		if err != nil {
			return nil, fmt.Errorf("user rabbitmq (created by the rabbitmq-server package): %w", err)
		}
		u32, err := strconv.ParseUint(u.Uid, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("user rabbitmq: uid %q: %w", u.Uid, err)
		}
		g32, err := strconv.ParseUint(u.Gid, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("user rabbitmq: gid %q: %w", u.Gid, err)
		}
		cred = &syscall.Credential{Uid: uint32(u32), Gid: uint32(g32)}
		uid, gid = int(u32), int(g32)
	}
	base, err := os.MkdirTemp("", fmt.Sprintf("taskevents-rabbitmq-%d-", port))
	if err != nil {
		return nil, err
	}
	h.onClose(func() error { return os.RemoveAll(base) })
	files := map[string]string{
		// No plugins: management and friends would add ports and seconds of boot time.
		"enabled_plugins": "[].\n",
		// Replaces /etc/rabbitmq/rabbitmq-env.conf, which belongs to the packaged node.
		"rabbitmq-env.conf": "",
		"rabbitmq.conf": "listeners.tcp.1 = " + ip + ":" + strconv.Itoa(port) + "\n" +
			"log.console = true\nlog.console.level = warning\nlog.file = false\n" +
			// guest/guest may log in from loopback only (RabbitMQ's default, kept explicit).
			"loopback_users.guest = true\n",
	}
	if username != "" {
		// A fresh node creates its default user from these, with full rights on "/".
		files["rabbitmq.conf"] += "default_user = " + username + "\ndefault_pass = " + password + "\n"
	}
	owned := []string{base}
	for _, d := range []string{"mnesia", "home"} {
		if err := os.Mkdir(filepath.Join(base, d), 0o750); err != nil {
			return nil, err
		}
		owned = append(owned, filepath.Join(base, d))
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(base, name), []byte(content), 0o600); err != nil {
			return nil, err
		}
		owned = append(owned, filepath.Join(base, name))
	}
	if cred != nil {
		for _, path := range owned {
			if err := os.Lchown(path, uid, gid); err != nil {
				return nil, err
			}
		}
	}

	node := fmt.Sprintf("taskevents-%d@localhost", port)
	env := environ(
		"HOME="+filepath.Join(base, "home"), // the node's Erlang cookie is created here
		"ERL_EPMD_PORT="+strconv.Itoa(epmdPort),
		"ERL_EPMD_ADDRESS=127.0.0.1",
		"RABBITMQ_NODENAME="+node,
		"RABBITMQ_USE_LONGNAME=false",
		"RABBITMQ_NODE_IP_ADDRESS="+ip,
		"RABBITMQ_NODE_PORT="+strconv.Itoa(port),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(distPort),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(base, "mnesia"),
		"RABBITMQ_LOG_BASE="+base,
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(base, "enabled_plugins"),
		"RABBITMQ_CONF_ENV_FILE="+filepath.Join(base, "rabbitmq-env.conf"),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(base, "rabbitmq.conf"),
		"RABBITMQ_ADVANCED_CONFIG_FILE="+filepath.Join(base, "advanced.config"),
		// Use the epmd below, never start a daemon of its own that would outlive us.
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-start_epmd false",
	)
	if _, err := h.startIn("epmd", base, cred, env, epmd,
		"-port", strconv.Itoa(epmdPort), "-address", "127.0.0.1"); err != nil {
		return nil, err
	}
	if err := waitEPMD(ctx, epmdPort); err != nil {
		return nil, err
	}
	// With NOTIFY_SOCKET set, Debian's start script execs the Erlang VM instead of running
	// it as a child of a shell, as under systemd's Type=notify: the VM is then the harness's
	// direct child, so the parent-death signal also stops it when the harness crashes. The
	// node reports READY=1 and its status on the socket, like to systemd.
	notify, err := listenNotify(filepath.Join(base, "notify.sock"), uid, gid)
	if err != nil {
		return nil, err
	}
	h.onClose(notify.Close)
	env = append(env, "NOTIFY_SOCKET="+notify.LocalAddr().String())
	p, err := h.startIn("rabbitmq", base, cred, env, server)
	if err != nil {
		return nil, err
	}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := notify.Read(buf)
			if err != nil {
				return
			}
			fmt.Fprintf(h.Sink, "[rabbitmq] sd_notify: %s\n", bytes.ReplaceAll(buf[:n], []byte("\n"), []byte(" ")))
		}
	}()
	addr := net.JoinHostPort(ip, strconv.Itoa(port))
	creds := url.UserPassword("guest", "guest")
	if username != "" {
		creds = url.UserPassword(username, password)
	}
	conn := (&url.URL{Scheme: "amqp", User: creds, Host: addr}).String()
	if err := waitAMQP(ctx, conn, addr, p); err != nil {
		return nil, err
	}
	return &Broker{Process: p, Name: "rabbitmq", ComponentFile: "rabbitmq.yaml",
		Overrides: map[string]string{"connectionString": conn}}, nil
}

// waitEPMD polls epmd on port with a NAMES_REQ until it answers with its own port. (No Go
// library speaks epmd; the request is three bytes.)
func waitEPMD(ctx context.Context, port int) error {
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	err := Poll(ctx, 10*time.Second, 20*time.Millisecond, func(ctx context.Context) error {
		d := net.Dialer{Timeout: time.Second}
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(time.Second))
		if _, err := conn.Write([]byte{0, 1, 'n'}); err != nil {
			return err
		}
		var got uint32
		if err := binary.Read(conn, binary.BigEndian, &got); err != nil {
			return err
		}
		if int64(got) != int64(port) {
			return fmt.Errorf("answers as port %d", got)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("epmd on %s never answered NAMES_REQ: %w", addr, err)
	}
	return nil
}

// waitAMQP waits until the node at addr accepts an AMQP 0-9-1 connection to conn (the
// connection string daprd gets: its user and vhost); a node still booting refuses or
// closes the connection.
func waitAMQP(ctx context.Context, conn, addr string, p *Process) error {
	err := Poll(ctx, 90*time.Second, 100*time.Millisecond, func(context.Context) error {
		if err := p.exitedErr("accepted AMQP"); err != nil {
			return err
		}
		c, err := amqp.DialConfig(conn, amqp.Config{Dial: amqp.DefaultDial(2 * time.Second)})
		if err != nil {
			return err
		}
		return c.Close()
	})
	if err != nil {
		// addr, not conn: the error must not carry the password.
		return fmt.Errorf("rabbitmq at %s never accepted an AMQP connection: %w\n%s", addr, err, p.Tail(30))
	}
	return nil
}

// listenNotify opens a unixgram socket the node (running as uid:gid) may write to.
func listenNotify(path string, uid, gid int) (*net.UnixConn, error) {
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	if uid >= 0 {
		if err := os.Chown(path, uid, gid); err != nil {
			_ = conn.Close()
			return nil, err
		}
	}
	return conn, nil
}
