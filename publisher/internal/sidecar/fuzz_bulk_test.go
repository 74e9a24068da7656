package sidecar

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzParseBulkError feeds parseBulkError whatever a sidecar (or something
// else listening on its port) might answer to a bulk publish. It must not
// panic, must report exactly the entry ids the body lists, and must read daprd's own
// shape exactly.
func FuzzParseBulkError(f *testing.F) {
	for _, seed := range []string{
		`{"failedEntries":[{"entryId":"0","error":"redis streams: error from publish: connection refused"}],"errorCode":"ERR_PUBSUB_PUBLISH_MESSAGE"}`,
		`{"failedEntries":[],"errorCode":"ERR_PUBSUB_PUBLISH_MESSAGE"}`,
		`{"errorCode":"ERR_PUBSUB_FORBIDDEN","message":"topic task-events is not allowed for app id task-api"}`,
		`{"failedEntries":null}`, `{"failedEntries":[{"entryId":1}]}`, `[]`, `null`, `"x"`,
		"invalid api token", "", "\xff\xfe", `{"failedEntries":[{"entryId":"0"},{"entryId":"0","error":"dup"}]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		failed, code, msg := parseBulkError(raw)
		if !utf8.ValidString(msg) || !utf8.ValidString(code) {
			t.Errorf("invalid UTF-8 in code %q or message %q", code, msg)
		}
		if failed != nil && len(failed) == 0 {
			t.Error("an empty failed map must be nil (nil means: every entry failed)")
		}
		// daprd's shape round-trips.
		var body struct {
			FailedEntries []struct {
				EntryID string `json:"entryId"`
				Error   string `json:"error"`
			} `json:"failedEntries"`
			ErrorCode string `json:"errorCode"`
		}
		if json.Unmarshal(raw, &body) != nil {
			if failed != nil {
				t.Errorf("entries %v reported from a body that is not a JSON object", failed)
			}
			return
		}
		listed := map[string]bool{}
		for _, e := range body.FailedEntries {
			listed[e.EntryID] = true
			if _, ok := failed[e.EntryID]; !ok {
				t.Errorf("entry %q listed in the body but not reported", e.EntryID)
			}
		}
		if len(listed) != len(failed) {
			t.Errorf("reported %d entries, the body lists %d", len(failed), len(listed))
		}
		if len(body.FailedEntries) > 0 {
			if code != body.ErrorCode {
				t.Errorf("code %q, want %q", code, body.ErrorCode)
			}
		}
	})
}
