package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"gopkg.in/yaml.v3"
)

// MotoServer returns the path of the pinned moto_server: $MOTO_SERVER, or what
// tools/moto/install.sh prints (it installs moto from PyPI once per machine).
func (h *Harness) MotoServer(ctx context.Context) (string, error) {
	if bin := os.Getenv("MOTO_SERVER"); bin != "" {
		return bin, nil
	}
	cmd := exec.CommandContext(ctx, filepath.Join(h.Root, "tools", "moto", "install.sh"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("tools/moto/install.sh: %w\n%s", err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

// StartSNSSQS runs moto's AWS emulator (SNS, SQS and STS on one port, state in memory) on
// loopback and waits until it answers an STS GetCallerIdentity, the first call daprd's
// snssqs component makes. port 0 picks a free one.
func (h *Harness) StartSNSSQS(ctx context.Context, port int) (*Broker, error) {
	bin, err := h.MotoServer(ctx)
	if err != nil {
		return nil, err
	}
	if port, err = OrFreePort(port); err != nil {
		return nil, err
	}
	p, err := h.start("moto", environ(), bin, "--host", "127.0.0.1", "--port", strconv.Itoa(port))
	if err != nil {
		return nil, err
	}
	endpoint := fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := waitMoto(ctx, endpoint, p); err != nil {
		return nil, err
	}
	return &Broker{Process: p, Name: "snssqs", ComponentFile: "snssqs.yaml",
		Overrides: map[string]string{
			"endpoint": endpoint,
			// moto accepts any key and checks no signature, but the AWS SDK signs every
			// request and, without keys, would look for credentials on an EC2 metadata
			// endpoint that is not there.
			"accessKey": motoKey, "secretKey": motoKey,
		},
		// SNS keeps nothing for a topic without subscribers: a task published before the
		// worker's sidecar has subscribed its queue is dropped (daprd reports the sidecar
		// healthy before it subscribes). Replicas share the one queue, so one subscription
		// per topic is all there is to wait for.
		WaitSubscribers: func(ctx context.Context, appID string, _ int) error {
			topics, err := h.subscribedTopics(appID)
			if err != nil {
				return err
			}
			return waitSQSSubscriptions(ctx, endpoint, appID, topics)
		}}, nil
}

// subscribedTopics lists the topics of the contract's pub/sub component that subscriptions/ routes to appID.
func (h *Harness) subscribedTopics(appID string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(h.Root, "subscriptions", "*.yaml"))
	if err != nil {
		return nil, err
	}
	var topics []string
	for _, f := range files {
		raw, err := os.ReadFile(f) //nolint:gosec // the repository's own subscriptions/
		if err != nil {
			return nil, err
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		for {
			var doc struct {
				Kind string `yaml:"kind"`
				Spec struct {
					PubsubName string `yaml:"pubsubname"`
					Topic      string `yaml:"topic"`
				} `yaml:"spec"`
				Scopes []string `yaml:"scopes"`
			}
			if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			if doc.Kind == "Subscription" && doc.Spec.PubsubName == h.Contract.PubSub &&
				(len(doc.Scopes) == 0 || slices.Contains(doc.Scopes, appID)) {
				topics = append(topics, doc.Spec.Topic)
			}
		}
	}
	if len(topics) == 0 {
		return nil, fmt.Errorf("no Subscription in subscriptions/ routes a topic of pubsub to %s", appID)
	}
	return topics, nil
}

// awsConfig points the AWS SDK at moto: a fixed region, the same static keys daprd gets
// (moto accepts any and checks no signature), and no retries inside one call, since every
// caller polls.
func awsConfig(endpoint string) aws.Config {
	return aws.Config{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(endpoint),
		Credentials:      credentials.NewStaticCredentialsProvider(motoKey, motoKey, ""),
		HTTPClient:       &http.Client{Timeout: 2 * time.Second},
		RetryMaxAttempts: 1,
	}
}

// motoKey is the access and secret key the harness and daprd give moto.
const motoKey = "taskevents-local"

func waitMoto(ctx context.Context, endpoint string, p *Process) error {
	client := sts.NewFromConfig(awsConfig(endpoint))
	err := Poll(ctx, 60*time.Second, 100*time.Millisecond, func(ctx context.Context) error {
		if err := p.exitedErr("answered"); err != nil {
			return err
		}
		out, err := client.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err == nil && aws.ToString(out.Account) == "" {
			return errors.New("GetCallerIdentity names no account")
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("moto at %s never answered GetCallerIdentity: %w\n%s", endpoint, err, p.Tail(30))
	}
	return nil
}

// waitSQSSubscriptions polls SNS ListSubscriptions until every topic delivers to the SQS
// queue daprd names after the app-id (its default consumerID).
func waitSQSSubscriptions(ctx context.Context, endpoint, appID string, topics []string) error {
	client := sns.NewFromConfig(awsConfig(endpoint))
	err := Poll(ctx, 60*time.Second, 100*time.Millisecond, func(ctx context.Context) error {
		subs, err := sqsSubscriptions(ctx, client, appID)
		if err != nil {
			return err
		}
		var missing []string
		for _, t := range topics {
			if !subs[t] {
				missing = append(missing, t)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("topics %v have none yet", missing)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("SNS topics %v never all got a subscription to SQS queue %s: %w", topics, appID, err)
	}
	return nil
}

// sqsSubscriptions returns the names of the SNS topics subscribed to the SQS queue named queue.
func sqsSubscriptions(ctx context.Context, client *sns.Client, queue string) (map[string]bool, error) {
	topics := map[string]bool{}
	pages := sns.NewListSubscriptionsPaginator(client, &sns.ListSubscriptionsInput{})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, s := range page.Subscriptions {
			if aws.ToString(s.Protocol) == "sqs" && arnName(aws.ToString(s.Endpoint)) == queue {
				topics[arnName(aws.ToString(s.TopicArn))] = true
			}
		}
	}
	return topics, nil
}

// arnName is the resource name at the end of an SNS topic or SQS queue ARN.
func arnName(arn string) string {
	return arn[strings.LastIndex(arn, ":")+1:]
}
