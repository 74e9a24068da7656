package httpapi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"

	"github.com/taskevents/taskevents/kit/jsonstr"
	"github.com/taskevents/taskevents/kit/logging"
	"github.com/taskevents/taskevents/kit/problem"
	"github.com/taskevents/taskevents/kit/sidecar"
	"github.com/taskevents/taskevents/kit/tracing"
	"github.com/taskevents/taskevents/publisher/internal/idempotency"
	"github.com/taskevents/taskevents/publisher/internal/publish"
	"github.com/taskevents/taskevents/publisher/internal/task"
)

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

// createTask handles POST /tasks: validate, claim the Idempotency-Key if the
// request has one, publish task.created, and answer 202 only once the sidecar
// has accepted the event.
func createTask(d Deps) http.Handler {
	opts := task.Options{MaxTitleLength: d.MaxTitleLength}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := checkContentType(r.Header.Get("Content-Type")); !ok {
			w.Header().Set("Accept-Post", "application/json")
			problem.Write(w, p)
			return
		}
		key, idempotent, err := idempotency.FromHeader(r.Header)
		if err != nil {
			problem.Write(w, keyProblem(err))
			return
		}
		if r.ContentLength > task.MaxBodyBytes {
			problem.Write(w, tooLarge())
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, task.MaxBodyBytes)
		t, err := task.Decode(r.Body, opts)
		if err != nil {
			problem.Write(w, decodeProblem(err))
			return
		}

		taskID := d.NewID()
		if idempotent {
			id, p, ok := d.claim(r, key, taskID, t.Title)
			if !ok {
				if p.Status == http.StatusServiceUnavailable {
					w.Header().Set("Retry-After", "1")
				}
				problem.Write(w, p)
				return
			}
			taskID = id
		}

		ev := publish.NewTaskCreated(taskID, t.Title)
		// Detached from the client's cancellation: once started, a publish
		// runs to its own deadline (PUBLISH_TIMEOUT), so a client that hangs
		// up cannot leave an attempt half-done and an outcome unlogged.
		ctx, span, trace := d.tracePublish(context.WithoutCancel(r.Context()), r, ev)
		err = d.Publisher.Publish(ctx, ev, trace)
		if span != nil {
			tracing.Fail(span, err)
			span.End()
		}
		var rejected *sidecar.ConfigError
		switch {
		case err == nil:
		case errors.As(err, &rejected):
			problem.Write(w, d.rejectedProblem(rejected, ev.TaskID))
			return
		case errors.Is(err, sidecar.ErrUnavailable):
			d.Metrics.SidecarUnavailable()
			// Sidecar restarts take seconds; a quick retry is the right advice.
			w.Header().Set("Retry-After", "1")
			problem.Write(w, problem.New(ProblemSidecarUnavailable, "Dapr sidecar unavailable", http.StatusServiceUnavailable,
				"The Dapr sidecar could not be reached or did not accept the event in time, so the task was NOT "+
					"published. It is safe to retry the request.").With("task_id", ev.TaskID))
			return
		default:
			d.Logger.Error().Err(err).Str("task_id", ev.TaskID).Msg("publish failed with an unclassified error")
			problem.Write(w, problem.Blank(http.StatusInternalServerError,
				"The task could not be published because of an unexpected error; the publisher's logs have the details."))
			return
		}
		writeCreated(w, ev.TaskID, ev.Title)
	})
}

// writeCreated writes the 202 body, {"id","title","event":"published"}.
func writeCreated(w http.ResponseWriter, id, title string) {
	b := make([]byte, 0, 64+len(id)+len(title))
	b = append(b, `{"id":`...)
	b = jsonstr.Append(b, id)
	b = append(b, `,"title":`...)
	b = jsonstr.Append(b, title)
	writeJSON(w, http.StatusAccepted, append(b, ",\"event\":\"published\"}\n"...))
}

// claim records that key created taskID, or finds the task an earlier request
// with key created. It returns the task id to publish under, or the problem
// to answer with (ok false).
//
// A key found with the same fingerprint is a retry: the task is published
// again under its first id, whether the first attempt was published, failed,
// or is still running. Subscribers dedupe by that id, so the retry is safe,
// and a retry after a failed publish does get the task published.
func (d Deps) claim(r *http.Request, key idempotency.Key, taskID, title string) (string, problem.Details, bool) {
	fp := idempotency.Fingerprint(title)
	held, claimed, err := d.Idempotency.Claim(r.Context(), key, idempotency.Record{TaskID: taskID, Fingerprint: fp})
	var rejected *sidecar.ConfigError
	switch {
	case err == nil:
	case errors.As(err, &rejected):
		d.Logger.Error().Err(err).Str("idempotency_key_id", key.ID()).Msg("the sidecar rejected the idempotency record")
		return "", d.storeRejectedProblem(rejected), false
	default:
		d.Logger.Warn().Err(err).Str("idempotency_key_id", key.ID()).Msg("idempotency store unavailable; task not published")
		store := "the in-process store"
		if d.IdempotencyStore != "" {
			store = fmt.Sprintf("Dapr state store %q", d.IdempotencyStore)
		}
		return "", problem.New(ProblemIdempotencyStoreUnavailable, "Idempotency store unavailable", http.StatusServiceUnavailable,
			fmt.Sprintf("The request has an Idempotency-Key, but the store that remembers keys (%s) could not be "+
				"reached, so the task was NOT published. It is safe to retry the request with the same key.",
				store)), false
	}
	if claimed {
		return taskID, problem.Details{}, true
	}
	if held.Fingerprint != fp {
		return "", problem.New(ProblemIdempotencyKeyReused, "Idempotency-Key already used", http.StatusUnprocessableEntity,
			"This Idempotency-Key was first used with a different task. Nothing was published. Resend the "+
				"original request unchanged to get its answer, or use a new key for a new task."), false
	}
	d.Logger.Info().Str("task_id", held.TaskID).Str("idempotency_key_id", key.ID()).
		Msg("idempotent retry: publishing the task again under its first id")
	return held.TaskID, problem.Details{}, true
}

func keyProblem(err error) problem.Details {
	detail := "The Idempotency-Key header is malformed."
	var ke *idempotency.KeyError
	if errors.As(err, &ke) {
		detail = "The Idempotency-Key header is malformed: " + ke.Detail + "."
	}
	return problem.New(ProblemIdempotencyKeyInvalid, "Malformed Idempotency-Key", http.StatusBadRequest,
		detail+" Nothing was published.")
}

// storeRejectedProblem is a 502 like a rejected publish: the sidecar has no
// such state store, or refused our token, and no retry fixes that.
func (d Deps) storeRejectedProblem(ce *sidecar.ConfigError) problem.Details {
	detail := answered("the idempotency record's save ", ce)
	switch {
	case ce.Code == sidecar.CodeStateStoreNotFound || ce.Code == sidecar.CodeStateStoreNotConfigured:
		detail = fmt.Sprintf("The request has an Idempotency-Key, but the sidecar has no state store named %q "+
			"(IDEMPOTENCY_STORE) to remember it in: add a state store component of that name whose scopes include "+
			"%s, or set IDEMPOTENCY_STORE=memory for a single replica.", d.IdempotencyStore, d.AppID)
	case ce.Status == http.StatusUnauthorized:
		detail = "The sidecar refused the API token: DAPR_API_TOKEN does not match the sidecar's token."
	}
	return rejected("Dapr sidecar rejected the request", detail, ce)
}

// rejectedProblem says what an operator has to change for the publish to work.
func (d Deps) rejectedProblem(ce *sidecar.ConfigError, taskID string) problem.Details {
	detail := answered("", ce)
	switch {
	case ce.Code == sidecar.CodeNotFound:
		detail = fmt.Sprintf("Publish failed: no pub/sub component named %q is loaded by the sidecar; check the "+
			"component's metadata.name, its scopes include %s, and --resources-path / kubectl get components.",
			d.PubSubName, d.AppID)
	case ce.Code == sidecar.CodeForbidden:
		detail = fmt.Sprintf("The sidecar does not allow app-id %s to publish to topic %q on pub/sub %q; check the "+
			"component's publishingScopes, allowedTopics and protectedTopics.", d.AppID, d.Topic, d.PubSubName)
	case ce.Status == http.StatusUnauthorized:
		detail = "The sidecar refused the API token: DAPR_API_TOKEN does not match the sidecar's token " +
			"(daprd's DAPR_API_TOKEN, or the secret in dapr.io/api-token-secret), or it is missing."
	}
	return rejected("Dapr sidecar rejected the event", detail, ce).With("task_id", taskID)
}

// rejected is the 502 for a request the sidecar refused: no retry helps
// until the configuration detail names is fixed.
func rejected(title, detail string, ce *sidecar.ConfigError) problem.Details {
	p := problem.New(ProblemSidecarRejected, title, http.StatusBadGateway,
		detail+" The task was NOT published; retrying will not help until this is fixed.").With("sidecar_status", ce.Status)
	if ce.Code != "" {
		p = p.With("sidecar_error_code", ce.Code)
	}
	return p
}

// answered is the detail of a refusal the sidecar explained in its own words.
func answered(what string, ce *sidecar.ConfigError) string {
	return fmt.Sprintf("The sidecar answered %s%d %s: %q.", what, ce.Status, cmp.Or(ce.Code, "with no error code"), ce.Message)
}

// checkContentType accepts application/json with an optional UTF-8 charset.
func checkContentType(ct string) (problem.Details, bool) {
	const fix = "Send the task as JSON with the header Content-Type: application/json."
	if strings.TrimSpace(ct) == "" {
		return problem.Blank(http.StatusUnsupportedMediaType, "The request has no Content-Type. "+fix), false
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return problem.Blank(http.StatusUnsupportedMediaType,
			fmt.Sprintf("The request's Content-Type is %q. %s", logging.Truncate(ct, 100), fix)), false
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
		return problem.Blank(http.StatusUnsupportedMediaType,
			fmt.Sprintf("The request's charset is %q; only UTF-8 JSON is accepted. %s", logging.Truncate(cs, 50), fix)), false
	}
	return problem.Details{}, true
}

func tooLarge() problem.Details {
	return problem.Blank(http.StatusRequestEntityTooLarge, fmt.Sprintf(
		"The request body is larger than %d bytes; a task is a JSON object with a short title.", task.MaxBodyBytes))
}

func decodeProblem(err error) problem.Details {
	var de *task.Error
	if !errors.As(err, &de) {
		return problem.New(ProblemMalformedJSON, "Malformed JSON", http.StatusBadRequest, "The request body could not be read.")
	}
	switch de.Kind {
	case task.TooLarge:
		return tooLarge()
	case task.Invalid:
		p := problem.New(ProblemInvalidTask, "Invalid task", http.StatusUnprocessableEntity, de.Detail)
		if len(de.Fields) > 0 {
			p = p.With("errors", de.Fields)
		}
		return p
	default:
		return problem.New(ProblemMalformedJSON, "Malformed JSON", http.StatusBadRequest, de.Detail)
	}
}
