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
