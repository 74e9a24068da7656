package harness

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// rabbitmqScripts is where Debian's rabbitmq-server package keeps the real start script;
// /usr/sbin/rabbitmq-server is a wrapper that insists on /var/lib/rabbitmq and the
// packaged node's log files, so the harness calls the script itself.
const rabbitmqScripts = "/usr/lib/rabbitmq/bin"

// StartRabbitMQ runs a RabbitMQ node from Debian's rabbitmq-server package on loopback: its
// own node name, AMQP and distribution ports, its own epmd on a free port (so no epmd
// daemon outlives the harness), data and logs in a scratch directory, no plugins. It waits
// until the AMQP port answers the protocol header with Connection.Start. port 0 picks a
// free one.
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
	if err := waitAMQP(ctx, addr, p); err != nil {
		return nil, err
	}
	creds := "guest:guest"
	if username != "" {
		creds = username + ":" + password
	}
	return &Broker{Process: p, Name: "rabbitmq", ComponentFile: "rabbitmq.yaml",
		Overrides: map[string]string{"connectionString": "amqp://" + creds + "@" + addr}}, nil
}

// waitEPMD polls epmd on port with a NAMES_REQ until it answers with its own port.
func waitEPMD(ctx context.Context, port int) error {
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	names := func() error {
		d := net.Dialer{Timeout: time.Second}
		conn, err := d.DialContext(wctx, "tcp", addr)
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
	}
	for {
		err := names()
		if err == nil {
			return nil
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("epmd on %s never answered NAMES_REQ (last: %w): %w", addr, err, wctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitAMQP polls addr until it answers the AMQP 0-9-1 protocol header with a
// Connection.Start method frame; a node still booting refuses or closes the connection.
func waitAMQP(ctx context.Context, addr string, p *Process) error {
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	for {
		if exited, _ := p.Exited(); exited {
			return fmt.Errorf("rabbitmq exited before it accepted AMQP:\n%s", p.Tail(30))
		}
		last := amqpHandshake(wctx, addr)
		if last == nil {
			return nil
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("rabbitmq at %s never answered AMQP (last: %w): %w\n%s", addr, last, wctx.Err(), p.Tail(30))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func amqpHandshake(ctx context.Context, addr string) error {
	d := net.Dialer{Timeout: time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte("AMQP\x00\x00\x09\x01")); err != nil {
		return err
	}
	// Frame: type (1 = method), channel (0), size, then class 10 (connection), method 10 (start).
	var hdr [11]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		return fmt.Errorf("read Connection.Start: %w", err)
	}
	if bytes.HasPrefix(hdr[:], []byte("AMQP")) {
		return fmt.Errorf("server refused protocol 0-9-1, offers %x", hdr[4:8])
	}
	class, method := binary.BigEndian.Uint16(hdr[7:9]), binary.BigEndian.Uint16(hdr[9:11])
	if hdr[0] != 1 || binary.BigEndian.Uint16(hdr[1:3]) != 0 || class != 10 || method != 10 {
		return fmt.Errorf("first frame is type %d class %d method %d, want Connection.Start (1, 10, 10)", hdr[0], class, method)
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
