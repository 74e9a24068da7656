package harness

import (
	"context"
	"fmt"
	"strings"
)

// Brokers are the names StartBroker takes; each runs the broker that
// components/<name>.yaml describes.
var Brokers = []string{"redis", "kafka", "rabbitmq", "snssqs"}

// StartBroker starts the named broker on port (0 picks a free one).
func (h *Harness) StartBroker(ctx context.Context, name string, port int) (*Broker, error) {
	switch name {
	case "redis":
		return h.StartRedis(ctx, port)
	case "kafka":
		return h.StartKafka(ctx, port)
	case "rabbitmq":
		return h.StartRabbitMQ(ctx, port)
	case "snssqs":
		return h.StartSNSSQS(ctx, port)
	default:
		return nil, fmt.Errorf("unknown broker %q; valid: %s", name, strings.Join(Brokers, ", "))
	}
}

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
