package main

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"sync/atomic"
)

// maxBody caps one delivery. A bulk delivery of maxMessagesCount entries of a few hundred
// bytes each stays far below it; daprd retries what we refuse, so the cap only has to
// stop a runaway sender.
const maxBody = 16 << 20

// cloudEventType is what daprd sends a single delivery as; a bulk delivery is
// application/json (pkg/runtime/subscription/postman/http in dapr v1.18).
const cloudEventType = "application/cloudevents+json"

type bulkStatus struct {
	EntryID string `json:"entryId"`
	Status  string `json:"status"`
}

var successBody = []byte(`{"status":"SUCCESS"}`)

// counter counts the events answered SUCCESS, one per single delivery and one per bulk entry.
type counter struct{ n atomic.Int64 }

// deliveries answers every delivery SUCCESS after reading the whole body, as a handler must
// for daprd to reuse the connection.
func (c *counter) deliveries(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		status := http.StatusBadRequest
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			status = http.StatusRequestEntityTooLarge
		}
		http.Error(w, err.Error(), status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	// A single delivery needs no decoding at all: that is what makes this the no-op anchor.
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != cloudEventType {
		if ids, ok := bulkEntryIDs(body); ok {
			statuses := make([]bulkStatus, len(ids))
			for i, id := range ids {
				statuses[i] = bulkStatus{EntryID: id, Status: "SUCCESS"}
			}
			out, _ := json.Marshal(struct {
				Statuses []bulkStatus `json:"statuses"`
			}{statuses})
			c.n.Add(int64(len(ids)))
			_, _ = w.Write(out)
			return
		}
	}
	c.n.Add(1)
	_, _ = w.Write(successBody)
}

func (c *counter) count(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, strconv.FormatInt(c.n.Load(), 10)+"\n")
}

// bulkEntryIDs reads the entry ids of daprd's bulk delivery envelope
// ({"entries":[{"entryId":"…","event":…},…],…}) and nothing else. ok is false when body is
// not such an envelope (no "entries" array), i.e. it is a single delivery.
func bulkEntryIDs(body []byte) (ids []string, ok bool) {
	var env struct {
		Entries []struct {
			EntryID string `json:"entryId"`
		} `json:"entries"`
	}
	if json.Unmarshal(body, &env) != nil || env.Entries == nil {
		return nil, false
	}
	ids = make([]string, len(env.Entries))
	for i, e := range env.Entries {
		ids[i] = e.EntryID
	}
	return ids, true
}
