package flows

import (
	"testing"

	"github.com/taskevents/taskevents/e2e/internal/suite"
	"github.com/taskevents/taskevents/tools/harness"
)

// The cloud broker: AWS SNS/SQS through daprd's pubsub.aws.snssqs, against moto's
// emulator on loopback, with components/snssqs.yaml as shipped (only the endpoint and dummy
// keys overridden). It runs whatever BROKERS says: the emulator needs no cloud account.
func TestCloudBrokerHappyPath(t *testing.T) {
	const broker = "snssqs"
	sys := suite.StartSystem(t, broker, harness.SystemOptions{})
	happyPath(t, broker, sys)
}
