package harness

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

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
			"accessKey": "taskevents-local", "secretKey": "taskevents-local",
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

// subscribedTopics lists the topics of component "pubsub" that subscriptions/ routes to appID.
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
			if doc.Kind == "Subscription" && doc.Spec.PubsubName == "pubsub" &&
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

// waitSQSSubscriptions polls SNS ListSubscriptions until every topic delivers to the SQS
// queue daprd names after the app-id (its default consumerID).
func waitSQSSubscriptions(ctx context.Context, endpoint, appID string, topics []string) error {
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var last error
	for {
		subs, err := sqsSubscriptions(wctx, endpoint, appID)
		if last = err; err == nil {
			var missing []string
			for _, t := range topics {
				if !subs[t] {
					missing = append(missing, t)
				}
			}
			if len(missing) == 0 {
				return nil
			}
			last = fmt.Errorf("topics %v have none yet", missing)
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("SNS topics %v never all got a subscription to SQS queue %s (last: %w): %w",
				topics, appID, last, wctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// sqsSubscriptions returns the names of the SNS topics subscribed to the SQS queue named queue.
func sqsSubscriptions(ctx context.Context, endpoint, queue string) (map[string]bool, error) {
	topics := map[string]bool{}
	next := ""
	for {
		form := url.Values{"Action": {"ListSubscriptions"}, "Version": {"2010-03-31"}}
		if next != "" {
			form.Set("NextToken", next)
		}
		body, err := awsQuery(ctx, endpoint, "sns", form)
		if err != nil {
			return nil, err
		}
		var resp struct {
			Members []struct {
				Protocol string `xml:"Protocol"`
				Endpoint string `xml:"Endpoint"`
				TopicArn string `xml:"TopicArn"`
			} `xml:"ListSubscriptionsResult>Subscriptions>member"`
			NextToken string `xml:"ListSubscriptionsResult>NextToken"`
		}
		if err := xml.Unmarshal(body, &resp); err != nil {
			return nil, fmt.Errorf("ListSubscriptions: %w", err)
		}
		for _, m := range resp.Members {
			if m.Protocol == "sqs" && arnName(m.Endpoint) == queue {
				topics[arnName(m.TopicArn)] = true
			}
		}
		if next = resp.NextToken; next == "" {
			return topics, nil
		}
	}
}

// arnName is the resource name at the end of an SNS topic or SQS queue ARN.
func arnName(arn string) string {
	return arn[strings.LastIndex(arn, ":")+1:]
}

func waitMoto(ctx context.Context, endpoint string, p *Process) error {
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var last error
	for {
		if exited, _ := p.Exited(); exited {
			return fmt.Errorf("moto_server exited before it answered:\n%s", p.Tail(30))
		}
		body, err := awsQuery(wctx, endpoint, "sts", url.Values{"Action": {"GetCallerIdentity"}, "Version": {"2011-06-15"}})
		if last = err; err == nil {
			if bytes.Contains(body, []byte("<Account>")) {
				return nil
			}
			last = fmt.Errorf("GetCallerIdentity answered %.200s", body)
		}
		select {
		case <-wctx.Done():
			return fmt.Errorf("moto at %s never answered GetCallerIdentity (last: %w): %w\n%s", endpoint, last, wctx.Err(), p.Tail(30))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// awsQuery sends one AWS query-protocol call to service and returns the XML answer. moto
// routes a request by the service in the Authorization header's credential scope and does
// not verify signatures.
func awsQuery(ctx context.Context, endpoint, service string, form url.Values) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint+"/", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=taskevents-local/20250101/us-east-1/"+service+
		"/aws4_request, SignedHeaders=content-type;host, Signature=0")
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s = %s %.200s", service, form.Get("Action"), resp.Status, body)
	}
	return body, nil
}
