package harness

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// KafkaPartitions is the partition count of every auto-created topic: at least the number
// of worker replicas in the tests (three), so each replica of one consumer group gets some.
const KafkaPartitions = 4

// KafkaLibs returns the directory of the pinned Kafka broker's jars: $KAFKA_LIBS, or what
// tools/kafka/fetch.sh prints (it fetches them from Maven Central once per machine).
func (h *Harness) KafkaLibs(ctx context.Context) (string, error) {
	if dir := os.Getenv("KAFKA_LIBS"); dir != "" {
		return dir, nil
	}
	cmd := exec.CommandContext(ctx, filepath.Join(h.Root, "tools", "kafka", "fetch.sh"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("tools/kafka/fetch.sh: %w\n%s", err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

// StartKafka runs a single-node Apache Kafka 4 in KRaft mode (broker and controller in one
// JVM with a bounded heap) on loopback, formats its storage in a scratch directory, and
// waits until it answers a Metadata request listing itself. port 0 picks a free one.
func (h *Harness) StartKafka(ctx context.Context, port int) (*Broker, error) {
	return h.startKafka(ctx, port, nil)
}

// KafkaSASL is a second, SASL_PLAINTEXT listener with one SCRAM-SHA-512 user, on an address
// other network namespaces (pods) reach, as a Kafka chart's client listener is.
type KafkaSASL struct {
	Addr               string // host:port
	Username, Password string
}

// StartKafkaSASL is StartKafka plus the SASL listener sasl describes.
func (h *Harness) StartKafkaSASL(ctx context.Context, sasl KafkaSASL) (*Broker, error) {
	return h.startKafka(ctx, 0, &sasl)
}

func (h *Harness) startKafka(ctx context.Context, port int, sasl *KafkaSASL) (*Broker, error) {
	java, err := javaBin()
	if err != nil {
		return nil, err
	}
	libs, err := h.KafkaLibs(ctx)
	if err != nil {
		return nil, err
	}
	if port, err = OrFreePort(port); err != nil {
		return nil, err
	}
	controllerPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(h.Dir, "kafka-"+strconv.Itoa(port))
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o750); err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	props := filepath.Join(dir, "server.properties")
	config := kafkaProperties(dir, addr, controllerPort)
	formatArgs := []string{}
	if sasl != nil {
		config = strings.NewReplacer(
			"listeners=PLAINTEXT://", "listeners=SASL_PLAINTEXT://"+sasl.Addr+",PLAINTEXT://",
			"listener.security.protocol.map=", "listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,",
		).Replace(config) + "sasl.enabled.mechanisms=SCRAM-SHA-512\n" +
			"listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;\n"
		// KRaft keeps SCRAM credentials in the metadata log: add the user when formatting.
		formatArgs = append(formatArgs, "--add-scram",
			fmt.Sprintf("SCRAM-SHA-512=[name=%s,password=%s]", sasl.Username, sasl.Password))
	}
	if err := os.WriteFile(props, []byte(config), 0o600); err != nil {
		return nil, err
	}
	logConfig := filepath.Join(dir, "log4j2.properties")
	if err := os.WriteFile(logConfig, []byte(kafkaLog4j), 0o600); err != nil {
		return nil, err
	}
	jvm := []string{
		// 2 cores: a small fixed heap and the serial collector keep the broker from competing
		// with daprd and the apps for CPU.
		"-Xms256m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:CICompilerCount=2",
		"-Djava.awt.headless=true", "-Dlog4j2.configurationFile=" + logConfig,
		"-cp", filepath.Join(libs, "*"),
	}

	// Format the log directory with a fresh cluster id (what `kafka-storage.sh format` does).
	fctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	format := exec.CommandContext(fctx, java, append(append([]string{}, jvm...),
		append([]string{"kafka.tools.StorageTool", "format", "--ignore-formatted", "-t", kafkaClusterID(), "-c", props}, formatArgs...)...)...)
	format.Dir = dir
	if out, err := format.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("format Kafka storage: %w\n%s", err, tail(string(out), 20))
	}

	p, err := h.start("kafka", environ(), java, append(jvm, "kafka.Kafka", props)...)
	if err != nil {
		return nil, err
	}
	if err := waitKafka(ctx, addr, p); err != nil {
		return nil, err
	}
	return &Broker{Process: p, Name: "kafka", ComponentFile: "kafka.yaml",
		Overrides: map[string]string{"brokers": addr},
		WaitSubscribers: func(ctx context.Context, appID string, replicas int) error {
			return waitKafkaGroup(ctx, addr, appID, replicas)
		}}, nil
}

func kafkaProperties(dir, addr string, controllerPort int) string {
	return fmt.Sprintf(`# Written by the taskevents harness: one KRaft node, plaintext on loopback, no auth.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:%[3]d
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://%[2]s,CONTROLLER://127.0.0.1:%[3]d
advertised.listeners=PLAINTEXT://%[2]s
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=%[1]s/data
# Topics are auto-created by the first publish or subscribe (as in most clusters) with
# enough partitions for every worker replica of one consumer group to get some.
auto.create.topics.enable=true
num.partitions=%[4]d
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# A single node: do not wait for more members before the first rebalance.
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
background.threads=4
log.retention.hours=1
`, dir, addr, controllerPort, KafkaPartitions)
}

// kafkaLog4j keeps the broker quiet (warnings and errors) except for its lifecycle lines.
const kafkaLog4j = `status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = STDOUT
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
logger.broker.name = kafka.server.BrokerServer
logger.broker.level = INFO
`

// kafkaClusterID returns a random Kafka Uuid in its string form (base64url, no padding).
func kafkaClusterID() string {
	for {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		// As Kafka's Uuid.randomUuid: never one starting with "-", which the storage
		// tool's argument parser would take for an option.
		if id := base64.RawURLEncoding.EncodeToString(b); id[0] != '-' {
			return id
		}
	}
}

func javaBin() (string, error) {
	if home := os.Getenv("JAVA_HOME"); home != "" {
		java := filepath.Join(home, "bin", "java")
		if _, err := os.Stat(java); err == nil { //nolint:gosec // JAVA_HOME is the user's own choice of JVM
			return java, nil
		}
	}
	java, err := exec.LookPath("java")
	if err != nil {
		return "", fmt.Errorf("java is not installed (Kafka needs Java 17+): run `make prereqs`")
	}
	return java, nil
}

func waitKafka(ctx context.Context, addr string, p *Process) error {
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	var last error
	for {
		if exited, _ := p.Exited(); exited {
			return fmt.Errorf("kafka exited before it served metadata:\n%s", p.Tail(30))
		}
		brokers, err := KafkaBrokers(wctx, addr)
		if err == nil && len(brokers) > 0 {
			return nil
		}
		if err != nil {
			last = err
		} else {
			last = errors.New("metadata lists no live broker yet")
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("kafka at %s never answered a metadata request (last: %w): %w\n%s", addr, last, wctx.Err(), p.Tail(30))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// KafkaBrokers sends a Metadata request to addr and returns the live brokers it lists as
// host:port. A broker that is still starting (or fenced) lists none or refuses.
func KafkaBrokers(ctx context.Context, addr string) ([]string, error) {
	c, err := dialKafka(ctx, addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	// Metadata v4..v8 share the request layout below and a non-flexible response that
	// starts with throttle time and brokers; pick one the broker serves.
	v, err := c.pick(kafkaMetadata, 4, 8)
	if err != nil {
		return nil, err
	}
	var req kafkaWriter
	req.int32(0)    // topics: an empty array asks for no topic
	req.bool(false) // allow_auto_topic_creation (v4+)
	if v >= 8 {
		req.bool(false) // include_cluster_authorized_operations
		req.bool(false) // include_topic_authorized_operations
	}
	resp, err := c.call(kafkaMetadata, v, req.Bytes())
	if err != nil {
		return nil, err
	}
	r := kafkaReader{b: resp}
	r.int32() // throttle_time_ms
	n := r.int32()
	var out []string
	for i := int32(0); i < n && r.err == nil; i++ {
		r.int32() // node_id
		host := r.string()
		port := r.int32()
		r.string() // rack (nullable)
		out = append(out, net.JoinHostPort(host, strconv.Itoa(int(port))))
	}
	return out, r.err
}

// KafkaGroup is what DescribeGroups says about one consumer group.
type KafkaGroup struct {
	State string
	// Members holds, per member, how many partitions of each topic it was assigned.
	Members []map[string]int
}

// balanced reports whether the group is stable with exactly n members and every member
// holds at least one partition of every topic the group consumes.
func (g KafkaGroup) balanced(n int) bool {
	if g.State != "Stable" || len(g.Members) != n {
		return false
	}
	topics := map[string]bool{}
	for _, m := range g.Members {
		for t := range m {
			topics[t] = true
		}
	}
	for _, m := range g.Members {
		if len(m) == 0 {
			return false
		}
		for t := range topics {
			if m[t] == 0 {
				return false
			}
		}
	}
	return true
}

// waitKafkaGroup waits until the consumer group of appID (daprd's default consumerGroup) is
// stable with every replica holding partitions, so that what is published next is spread
// over all of them instead of landing on whichever sidecar joined first.
func waitKafkaGroup(ctx context.Context, addr, appID string, replicas int) error {
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var (
		g   KafkaGroup
		err error
	)
	for {
		g, err = DescribeKafkaGroup(wctx, addr, appID)
		if err == nil && g.balanced(replicas) {
			return nil
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("kafka consumer group %s never became stable with %d members holding partitions (last: state %q, assignments %v, err %w): %w",
				appID, replicas, g.State, g.Members, err, wctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// DescribeKafkaGroup asks the broker (the group coordinator of a single node) about group.
func DescribeKafkaGroup(ctx context.Context, addr, group string) (KafkaGroup, error) {
	c, err := dialKafka(ctx, addr)
	if err != nil {
		return KafkaGroup{}, err
	}
	defer c.Close()
	v, err := c.pick(kafkaDescribeGroups, 0, 4)
	if err != nil {
		return KafkaGroup{}, err
	}
	var req kafkaWriter
	req.int32(1)
	req.string(group)
	if v >= 3 {
		req.bool(false) // include_authorized_operations
	}
	resp, err := c.call(kafkaDescribeGroups, v, req.Bytes())
	if err != nil {
		return KafkaGroup{}, err
	}
	r := kafkaReader{b: resp}
	if v >= 1 {
		r.int32() // throttle_time_ms
	}
	if n := r.int32(); n != 1 {
		return KafkaGroup{}, fmt.Errorf("DescribeGroups returned %d groups", n)
	}
	if code := r.int16(); code != 0 {
		return KafkaGroup{}, fmt.Errorf("DescribeGroups %s: error code %d", group, code)
	}
	r.string() // group_id
	g := KafkaGroup{State: r.string()}
	r.string() // protocol_type
	r.string() // protocol_data
	members := r.int32()
	for i := int32(0); i < members && r.err == nil; i++ {
		r.string() // member_id
		if v >= 4 {
			r.string() // group_instance_id
		}
		r.string() // client_id
		r.string() // client_host
		r.bytes()  // member_metadata
		g.Members = append(g.Members, consumerAssignment(r.bytes()))
	}
	return g, r.err
}

// KafkaCommitted returns how many messages of topic (the sum of committed offsets over
// its partitions) the consumer group has committed.
func KafkaCommitted(ctx context.Context, addr, group, topic string, partitions int) (int64, error) {
	c, err := dialKafka(ctx, addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	v, err := c.pick(kafkaOffsetFetch, 1, 5)
	if err != nil {
		return 0, err
	}
	var req kafkaWriter
	req.string(group)
	req.int32(1)
	req.string(topic)
	n := int32(min(partitions, 1<<16)) //nolint:gosec // bounded just now
	req.int32(n)
	for i := range n {
		req.int32(i)
	}
	resp, err := c.call(kafkaOffsetFetch, v, req.Bytes())
	if err != nil {
		return 0, err
	}
	r := kafkaReader{b: resp}
	if v >= 3 {
		r.int32() // throttle_time_ms
	}
	var total int64
	for range r.int32() {
		r.string() // topic
		for range r.int32() {
			r.int32() // partition
			hi, lo := r.int32(), r.int32()
			offset := int64(hi)<<32 | int64(uint32(lo)) //nolint:gosec // reassembling a big-endian int64
			if v >= 5 {
				r.int32() // committed_leader_epoch
			}
			r.string() // metadata
			if code := r.int16(); code != 0 {
				return 0, fmt.Errorf("OffsetFetch %s/%s: error code %d", group, topic, code)
			}
			if offset > 0 { // -1: nothing committed yet
				total += offset
			}
		}
	}
	return total, r.err
}

// consumerAssignment decodes a consumer protocol assignment into partitions per topic.
func consumerAssignment(b []byte) map[string]int {
	out := map[string]int{}
	if len(b) == 0 {
		return out
	}
	r := kafkaReader{b: b}
	r.int16() // version
	for range r.int32() {
		topic := r.string()
		n := r.int32()
		for range n {
			r.int32()
		}
		if n > 0 {
			out[topic] += int(n)
		}
	}
	if r.err != nil {
		return map[string]int{}
	}
	return out
}

// The little of the Kafka wire protocol the harness needs: classic (non-flexible) request
// header v1 and response header v0, over one TCP connection.
const (
	kafkaMetadata       = 3
	kafkaOffsetFetch    = 9
	kafkaDescribeGroups = 15
	kafkaAPIVersions    = 18
)

type kafkaConn struct {
	net.Conn
	rd       *bufio.Reader
	corr     int32
	versions map[int16][2]int16
}

func dialKafka(ctx context.Context, addr string) (*kafkaConn, error) {
	d := net.Dialer{Timeout: 2 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(5 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetDeadline(deadline)
	c := &kafkaConn{Conn: conn, rd: bufio.NewReader(conn)}
	// ApiVersions v0 is served by every broker version, before anything else is known.
	resp, err := c.call(kafkaAPIVersions, 0, nil)
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("ApiVersions: %w", err)
	}
	r := kafkaReader{b: resp}
	if code := r.int16(); code != 0 {
		_ = conn.Close()
		return nil, fmt.Errorf("ApiVersions: error code %d", code)
	}
	c.versions = map[int16][2]int16{}
	for range r.int32() {
		k, lo, hi := r.int16(), r.int16(), r.int16()
		c.versions[k] = [2]int16{lo, hi}
	}
	if r.err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("ApiVersions: %w", r.err)
	}
	return c, nil
}

// pick returns the newest version of api in [lo, hi] that the broker serves.
func (c *kafkaConn) pick(api, lo, hi int16) (int16, error) {
	r, ok := c.versions[api]
	if !ok || r[1] < lo || r[0] > hi {
		return 0, fmt.Errorf("broker serves api %d only at versions %d..%d, the harness speaks %d..%d", api, r[0], r[1], lo, hi)
	}
	return min(hi, r[1]), nil
}

func (c *kafkaConn) call(api, version int16, body []byte) ([]byte, error) {
	c.corr++
	var w kafkaWriter
	w.int32(0) // size, patched below
	w.int16(api)
	w.int16(version)
	w.int32(c.corr)
	w.string("taskevents-harness")
	_, _ = w.Write(body)
	msg := w.Bytes()
	binary.BigEndian.PutUint32(msg, uint32(len(msg)-4)) //nolint:gosec // a request of a few bytes
	if _, err := c.Write(msg); err != nil {
		return nil, err
	}
	var size int32
	if err := binary.Read(c.rd, binary.BigEndian, &size); err != nil {
		return nil, err
	}
	if size < 4 || size > 16<<20 {
		return nil, fmt.Errorf("implausible response size %d", size)
	}
	resp := make([]byte, size)
	if _, err := io.ReadFull(c.rd, resp); err != nil {
		return nil, err
	}
	if got := int32(binary.BigEndian.Uint32(resp)); got != c.corr { //nolint:gosec // wire format is int32
		return nil, fmt.Errorf("correlation id %d, want %d", got, c.corr)
	}
	return resp[4:], nil
}

type kafkaWriter struct{ bytes.Buffer }

func (w *kafkaWriter) int16(v int16) { _ = binary.Write(w, binary.BigEndian, v) }
func (w *kafkaWriter) int32(v int32) { _ = binary.Write(w, binary.BigEndian, v) }
func (w *kafkaWriter) string(s string) {
	s = s[:min(len(s), 1<<15-1)]
	w.int16(int16(len(s))) //nolint:gosec // truncated to fit just now
	_, _ = w.WriteString(s)
}
func (w *kafkaWriter) bool(b bool) {
	if b {
		_ = w.WriteByte(1)
	} else {
		_ = w.WriteByte(0)
	}
}

// kafkaReader decodes big-endian fields; the first short read sets err and zeroes the rest.
type kafkaReader struct {
	b   []byte
	err error
}

func (r *kafkaReader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.err = io.ErrUnexpectedEOF
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *kafkaReader) int16() int16 {
	if b := r.take(2); b != nil {
		return int16(binary.BigEndian.Uint16(b)) //nolint:gosec // wire format is int16
	}
	return 0
}

func (r *kafkaReader) int32() int32 {
	if b := r.take(4); b != nil {
		return int32(binary.BigEndian.Uint32(b)) //nolint:gosec // wire format is int32
	}
	return 0
}

func (r *kafkaReader) string() string {
	n := r.int16()
	if n < 0 {
		return "" // null
	}
	return string(r.take(int(n)))
}

func (r *kafkaReader) bytes() []byte {
	n := r.int32()
	if n < 0 {
		return nil
	}
	return r.take(int(n))
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  | " + strings.Join(lines, "\n  | ")
}
