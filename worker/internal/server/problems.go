package problem

// Slugs of the worker's own problem types, each a section of docs/problems.md.
const (
	Unauthorized       = "unauthorized"
	NotReplayable      = "not-replayable"
	DeadLettersNotKept = "deadletters-not-kept"
)
