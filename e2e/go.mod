module github.com/taskevents/taskevents/e2e

go 1.26.5

require (
	github.com/caarlos0/env/v11 v11.4.2
	github.com/google/uuid v1.6.0
	gopkg.in/yaml.v3 v3.0.1
)
