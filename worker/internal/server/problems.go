package server

// Slugs of the worker's own problem types, each a section of docs/problems.md.
const (
	problemUnauthorized       = "unauthorized"
	problemNotReplayable      = "not-replayable"
	problemDeadLettersNotKept = "deadletters-not-kept"
)
