package server

import (
	"io"
	"net/http"

	"github.com/taskevents/taskevents/worker/internal/metrics"
	"github.com/taskevents/taskevents/worker/internal/taskevent"
)

// handleDeadLetter records what reached the dead-letter topic. It answers
// SUCCESS to everything, garbage included: any other answer would make daprd
// retry or dead-letter the dead letter, and a broken message would loop.
func (s *Server) handleDeadLetter(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxEventBytes))
	meta, task := taskevent.Peek(r.Header, body)
	s.metrics.DeadLetter()
	e := s.log.Warn().
		Str("event_id", meta.ID).
		Str("type", meta.Type).
		Str("source", meta.Source).
		Str("topic", meta.Topic).
		Str("pubsubname", meta.PubsubName).
		Str("traceparent", meta.Traceparent)
	strIf(e, "task_id", task.TaskID)
	if err != nil {
		e.Str("reason", "body could not be read in full: "+err.Error())
	}
	e.Msg(MsgDeadLetter)
	writeStatus(w, metrics.OutcomeSuccess)
}
