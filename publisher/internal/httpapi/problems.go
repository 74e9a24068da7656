package httpapi

// Slugs of the publisher's own problem types, each a section of docs/problems.md.
const (
	ProblemMalformedJSON      = "malformed-json"
	ProblemInvalidTask        = "invalid-task"
	ProblemSidecarUnavailable = "sidecar-unavailable"
	ProblemSidecarRejected    = "sidecar-rejected"

	ProblemIdempotencyKeyInvalid       = "idempotency-key-invalid"
	ProblemIdempotencyKeyReused        = "idempotency-key-reused"
	ProblemIdempotencyStoreUnavailable = "idempotency-store-unavailable"
)
