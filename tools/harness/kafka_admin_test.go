package harness

import (
	"context"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// TestKafkaAdmin starts the harness's Kafka with its SCRAM listener, produces through that
// listener as a pod's sidecar would, consumes and commits in a group, and checks what the
// admin queries the tests rely on (end offsets, committed offsets, group balance) report.
func TestKafkaAdmin(t *testing.T) {
	if b := os.Getenv("BROKERS"); b != "" && !slices.Contains(strings.Split(b, ","), "kafka") {
		t.Skipf("kafka is not in BROKERS=%s", b)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, err := FindRoot(wd)
	if err != nil {
		t.Fatal(err)
	}
	h := &Harness{Root: root, Dir: t.TempDir(), Sink: &lockedWriter{w: io.Discard}}
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Error(err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	saslPort, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	sasl := KafkaSASL{Addr: "127.0.0.1:" + strconv.Itoa(saslPort), Username: "harness", Password: "s3cret-" + strconv.Itoa(saslPort)}
	broker, err := h.StartKafkaSASL(ctx, sasl)
	if err != nil {
		t.Fatal(err)
	}
	addr := broker.Overrides["brokers"]

	brokers, err := KafkaBrokers(ctx, addr)
	if err != nil || !slices.Equal(brokers, []string{addr}) {
		t.Fatalf("KafkaBrokers = %v, %v; want [%s]", brokers, err, addr)
	}

	const topic, group, n = "admin-test", "admin-test-group", 10
	auth := kgo.SASL(scram.Auth{User: sasl.Username, Pass: sasl.Password}.AsSha512Mechanism())
	producer, err := kgo.NewClient(kgo.SeedBrokers(sasl.Addr), auth, kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	var records []*kgo.Record
	for i := range n {
		records = append(records, &kgo.Record{Topic: topic, Key: []byte(strconv.Itoa(i)), Value: []byte("v")})
	}
	if err := producer.ProduceSync(ctx, records...).FirstErr(); err != nil {
		t.Fatalf("produce over SASL/SCRAM-SHA-512: %v", err)
	}
	if end, err := KafkaEndOffsets(ctx, addr, topic); err != nil || end != n {
		t.Fatalf("KafkaEndOffsets = %d, %v; want %d", end, err, n)
	}
	if _, err := KafkaEndOffsets(ctx, addr, "no-such-topic"); err == nil {
		t.Error("KafkaEndOffsets of a missing topic: no error")
	}

	consumer, err := kgo.NewClient(kgo.SeedBrokers(sasl.Addr), auth,
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit())
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	for got := 0; got < n; {
		fetches := consumer.PollFetches(ctx)
		if err := fetches.Err(); err != nil {
			t.Fatalf("consume: %v", err)
		}
		got += fetches.NumRecords()
	}
	// Asked only now: before the first group joins, a fresh broker answers OffsetFetch with
	// COORDINATOR_NOT_AVAILABLE while it creates its offsets topic.
	if c, err := KafkaCommitted(ctx, addr, group, topic); err != nil || c != 0 {
		t.Fatalf("KafkaCommitted before any commit = %d, %v; want 0", c, err)
	}
	if err := consumer.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	if c, err := KafkaCommitted(ctx, addr, group, topic); err != nil || c != n {
		t.Fatalf("KafkaCommitted = %d, %v; want %d", c, err, n)
	}
	if err := waitKafkaGroup(ctx, addr, group, 1); err != nil {
		t.Fatal(err)
	}
	g, err := DescribeKafkaGroup(ctx, addr, group)
	if err != nil || len(g.Members) != 1 || g.Members[0][topic] != KafkaPartitions {
		t.Fatalf("DescribeKafkaGroup = %+v, %v; want one member holding %d partitions of %s", g, err, KafkaPartitions, topic)
	}
	short, cancelShort := context.WithTimeout(ctx, time.Second)
	defer cancelShort()
	if err := waitKafkaGroup(short, addr, group, 2); err == nil || !strings.Contains(err.Error(), `state "Stable"`) {
		t.Errorf("waitKafkaGroup for 2 members of a group of 1: %v; want the group's last state in the error", err)
	}
}
