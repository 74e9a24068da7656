package harness

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
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

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  | " + strings.Join(lines, "\n  | ")
}
