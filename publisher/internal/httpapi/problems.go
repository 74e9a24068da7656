package problem

// Slugs of the publisher's own problem types, each a section of docs/problems.md.
const (
	MalformedJSON      = "malformed-json"
	InvalidTask        = "invalid-task"
	SidecarUnavailable = "sidecar-unavailable"
	SidecarRejected    = "sidecar-rejected"

	IdempotencyKeyInvalid       = "idempotency-key-invalid"
	IdempotencyKeyReused        = "idempotency-key-reused"
	IdempotencyStoreUnavailable = "idempotency-store-unavailable"
)
