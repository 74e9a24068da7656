package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// Contract is what the two apps and their sidecars agree on, read from the files that
// define it, so the harness and the tests follow those files instead of repeating their
// literals: rename the topic in subscriptions/ and every test follows.
type Contract struct {
	PublisherAppID, WorkerAppID string // charts/taskevents/values.yaml, <app>.dapr.appId
	PubSub, Topic               string // subscriptions/task-events.yaml
	DeadLetterTopic             string // its deadLetterTopic
	Route                       string // its default route: where task events reach the worker
	DeadLetterRoute             string // subscriptions/task-events-deadletter.yaml's default route
	EventType                   string // docs/asyncapi.yaml, the message's name
}

// LoadContract reads the contract from the repository at root.
func LoadContract(root string) (Contract, error) {
	var c Contract
	var values struct {
		Publisher struct {
			Dapr struct {
				AppID string `yaml:"appId"`
			} `yaml:"dapr"`
		} `yaml:"publisher"`
		Worker struct {
			Dapr struct {
				AppID string `yaml:"appId"`
			} `yaml:"dapr"`
		} `yaml:"worker"`
	}
	type subscription struct {
		Spec struct {
			PubSubName      string `yaml:"pubsubname"`
			Topic           string `yaml:"topic"`
			DeadLetterTopic string `yaml:"deadLetterTopic"`
			Routes          struct {
				Default string `yaml:"default"`
			} `yaml:"routes"`
		} `yaml:"spec"`
	}
	var sub, dead subscription
	var asyncAPI struct {
		Components struct {
			Messages map[string]struct {
				Name string `yaml:"name"`
			} `yaml:"messages"`
		} `yaml:"components"`
	}
	for file, into := range map[string]any{
		"charts/taskevents/values.yaml":             &values,
		"subscriptions/task-events.yaml":            &sub,
		"subscriptions/task-events-deadletter.yaml": &dead,
		"docs/asyncapi.yaml":                        &asyncAPI,
	} {
		raw, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			return c, err
		}
		if err := yaml.Unmarshal(raw, into); err != nil {
			return c, fmt.Errorf("%s: %w", file, err)
		}
	}
	c = Contract{
		PublisherAppID: values.Publisher.Dapr.AppID, WorkerAppID: values.Worker.Dapr.AppID,
		PubSub: sub.Spec.PubSubName, Topic: sub.Spec.Topic, DeadLetterTopic: sub.Spec.DeadLetterTopic,
		Route: sub.Spec.Routes.Default, DeadLetterRoute: dead.Spec.Routes.Default,
		EventType: asyncAPI.Components.Messages["taskCreated"].Name,
	}
	var missing []string
	for name, v := range map[string]string{"publisher app-id": c.PublisherAppID, "worker app-id": c.WorkerAppID,
		"pubsub": c.PubSub, "topic": c.Topic, "dead-letter topic": c.DeadLetterTopic, "route": c.Route,
		"dead-letter route": c.DeadLetterRoute, "event type": c.EventType} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return c, fmt.Errorf("contract: no %s in the repository's files", strings.Join(missing, ", "))
	}
	if dead.Spec.Topic != c.DeadLetterTopic {
		return c, fmt.Errorf("contract: task-events dead-letters to %q but the dead-letter Subscription reads %q", c.DeadLetterTopic, dead.Spec.Topic)
	}
	return c, nil
}
