package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The harness's Kafka queries go through franz-go's admin client, over the broker's
// plaintext loopback listener (a SASL listener, when there is one, is for the pods).

// kafkaAdmin returns an admin client for the broker at addr; Close it when done. It dials
// nothing until the first request, and retries what Kafka calls retriable (a coordinator
// still loading, say) until ctx ends or for franz-go's default 30 s.
func kafkaAdmin(addr string, opts ...kgo.Opt) (*kadm.Client, error) {
	return kadm.NewOptClient(append([]kgo.Opt{
		kgo.SeedBrokers(addr),
		kgo.ClientID("taskevents-harness"),
		kgo.DialTimeout(2 * time.Second),
	}, opts...)...)
}

// pollRetries is for the clients of the waits: Poll asks again soon anyway, so an attempt
// fails early (and the wait notices an exited process) instead of retrying inside itself.
var pollRetries = kgo.RetryTimeout(5 * time.Second)

// waitKafka waits until the broker answers a Metadata request listing itself.
func waitKafka(ctx context.Context, addr string, p *Process) error {
	adm, err := kafkaAdmin(addr, pollRetries)
	if err != nil {
		return err
	}
	defer adm.Close()
	err = Poll(ctx, 90*time.Second, 100*time.Millisecond, func(ctx context.Context) error {
		if err := p.exitedErr("served metadata"); err != nil {
			return err
		}
		brokers, err := adm.ListBrokers(ctx)
		if err == nil && len(brokers) == 0 {
			return errors.New("metadata lists no live broker yet")
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("kafka at %s never answered a metadata request: %w\n%s", addr, err, p.Tail(30))
	}
	return nil
}

// KafkaBrokers sends a Metadata request to addr and returns the live brokers it lists as
// host:port. A broker that is still starting (or fenced) lists none or refuses.
func KafkaBrokers(ctx context.Context, addr string) ([]string, error) {
	adm, err := kafkaAdmin(addr)
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	brokers, err := adm.ListBrokers(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(brokers))
	for _, b := range brokers {
		out = append(out, net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))))
	}
	return out, nil
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

// DescribeKafkaGroup asks the broker (the group coordinator of a single node) about group.
func DescribeKafkaGroup(ctx context.Context, addr, group string) (KafkaGroup, error) {
	adm, err := kafkaAdmin(addr)
	if err != nil {
		return KafkaGroup{}, err
	}
	defer adm.Close()
	return describeKafkaGroup(ctx, adm, group)
}

func describeKafkaGroup(ctx context.Context, adm *kadm.Client, group string) (KafkaGroup, error) {
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return KafkaGroup{}, err
	}
	d, ok := described[group]
	if !ok {
		return KafkaGroup{}, fmt.Errorf("DescribeGroups did not describe %s", group)
	}
	if d.Err != nil {
		return KafkaGroup{}, fmt.Errorf("DescribeGroups %s: %w", group, d.Err)
	}
	g := KafkaGroup{State: d.State}
	for _, m := range d.Members {
		assigned := map[string]int{}
		if c, ok := m.Assigned.AsConsumer(); ok {
			for _, t := range c.Topics {
				if len(t.Partitions) > 0 {
					assigned[t.Topic] += len(t.Partitions)
				}
			}
		}
		g.Members = append(g.Members, assigned)
	}
	return g, nil
}

// waitKafkaGroup waits until the consumer group of appID (daprd's default consumerGroup) is
// stable with every replica holding partitions, so that what is published next is spread
// over all of them instead of landing on whichever sidecar joined first.
func waitKafkaGroup(ctx context.Context, addr, appID string, replicas int) error {
	adm, err := kafkaAdmin(addr, pollRetries)
	if err != nil {
		return err
	}
	defer adm.Close()
	err = Poll(ctx, 60*time.Second, 100*time.Millisecond, func(ctx context.Context) error {
		g, err := describeKafkaGroup(ctx, adm, appID)
		if err == nil && !g.balanced(replicas) {
			return fmt.Errorf("state %q, assignments %v", g.State, g.Members)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("kafka consumer group %s never became stable with %d members holding partitions: %w", appID, replicas, err)
	}
	return nil
}

// KafkaCommitted returns how many messages of topic (the sum of committed offsets over
// its partitions) the consumer group has committed.
func KafkaCommitted(ctx context.Context, addr, group, topic string) (int64, error) {
	adm, err := kafkaAdmin(addr)
	if err != nil {
		return 0, err
	}
	defer adm.Close()
	offsets, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return 0, fmt.Errorf("OffsetFetch %s: %w", group, err)
	}
	var total int64
	for p, o := range offsets[topic] {
		if o.Err != nil {
			return 0, fmt.Errorf("OffsetFetch %s/%s/%d: %w", group, topic, p, o.Err)
		}
		if o.At > 0 { // -1: nothing committed yet
			total += o.At
		}
	}
	return total, nil
}

// KafkaEndOffsets returns how many messages topic holds: the sum of the latest offsets
// over its partitions. With KafkaCommitted it tells whether a consumer group is drained.
func KafkaEndOffsets(ctx context.Context, addr, topic string) (int64, error) {
	adm, err := kafkaAdmin(addr)
	if err != nil {
		return 0, err
	}
	defer adm.Close()
	listed, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("ListOffsets %s: %w", topic, err)
	}
	if err := listed.Error(); err != nil { // a missing topic shows as partition -1
		return 0, fmt.Errorf("ListOffsets %s: %w", topic, err)
	}
	var total int64
	listed.Each(func(o kadm.ListedOffset) { total += o.Offset })
	return total, nil
}
