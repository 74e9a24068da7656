// Command worker (Dapr app-id task-worker) receives task events from its
// Dapr sidecar and answers each with SUCCESS, RETRY or DROP.
package main

import "github.com/taskevents/taskevents/kit/lifecycle"

func main() { lifecycle.Main("worker", run) }
