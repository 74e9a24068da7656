// Command publisher is the task-api: POST /tasks publishes a task.created
// event through the Dapr sidecar's HTTP API.
package main

import "github.com/taskevents/taskevents/kit/lifecycle"

func main() { lifecycle.Main("publisher", run) }
