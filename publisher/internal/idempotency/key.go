// Package idempotency implements the Idempotency-Key request header
// (draft-ietf-httpapi-idempotency-key-header) for POST /tasks: parsing the
// key, fingerprinting the request, and remembering which task a key created,
// in the Dapr state store or in memory.
package idempotency

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
)

// MaxKeyLength bounds a key in bytes (after unquoting). Long enough for any
// UUID, ULID or hash a client would use; short enough that a key is never a
// payload.
const MaxKeyLength = 255

// Key is a validated idempotency key. It keeps only the key's hash: the raw
// value is the client's and may be anything up to 255 bytes, so it never
// reaches a store key or a log line.
type Key struct{ id string }

// ID is the key's name in a store and in logs: "idempotency-" and the hex
// SHA-256 of the key. The prefix keeps these records apart from anything else
// sharing the state store.
func (k Key) ID() string { return k.id }

// KeyError is a malformed Idempotency-Key; Detail says what to fix.
type KeyError struct{ Detail string }

func (e *KeyError) Error() string { return "malformed Idempotency-Key: " + e.Detail }

// FromHeader returns the request's key; present is false when the request
// has no Idempotency-Key field at all (the request is then not idempotent).
// Any other malformed field, an empty one included, is a *KeyError.
func FromHeader(h http.Header) (key Key, present bool, err error) {
	values := h.Values("Idempotency-Key")
	switch len(values) {
	case 0:
		return Key{}, false, nil
	case 1:
	default:
		return Key{}, true, &KeyError{Detail: "the request has more than one Idempotency-Key field; send exactly one"}
	}
	raw, err := ParseKey(values[0])
	if err != nil {
		return Key{}, true, err
	}
	sum := sha256.Sum256([]byte(raw))
	return Key{id: "idempotency-" + hex.EncodeToString(sum[:])}, true, nil
}

// ParseKey returns the key a field value carries. The draft makes the field
// an RFC 8941 sf-string ("8e03978e-..."); most clients send the bare value
// instead (8e03978e-...), so both are accepted and name the same key. A bare
// key is one or more token characters (RFC 9110 tchar) or ":", "/" and "=",
// which covers UUIDs, ULIDs and base64. Either way the key is 1 to 255 bytes
// of visible ASCII (a quoted one may also hold spaces, as sf-string allows).
func ParseKey(field string) (string, error) {
	v := strings.Trim(field, " \t")
	if v == "" {
		return "", &KeyError{Detail: `the key is empty; send a unique value such as a UUID, e.g. Idempotency-Key: "8e03978e-40d5-43e8-bc93-6894a57f9324"`}
	}
	key := v
	if v[0] == '"' {
		var err error
		if key, err = parseSFString(v); err != nil {
			return "", err
		}
	} else {
		for i := 0; i < len(v); i++ {
			if !bareKeyChar(v[i]) {
				return "", &KeyError{Detail: fmt.Sprintf("byte %d of the field is %s, which a bare key may not contain; "+
					`send the key as a quoted string ("...") or use only letters, digits and !#$%%&'*+-.^_|~:/=`, i+1, describe(v[i]))}
			}
		}
	}
	if key == "" {
		return "", &KeyError{Detail: "the key is empty; send a unique value such as a UUID"}
	}
	if len(key) > MaxKeyLength {
		return "", &KeyError{Detail: fmt.Sprintf("the key is %d bytes long; at most %d are allowed", len(key), MaxKeyLength)}
	}
	return key, nil
}

// parseSFString parses RFC 8941 section 4.2.5: printable ASCII between double
// quotes, where a backslash escapes only '"' or '\'. Parameters after the
// string are not accepted: the draft defines none.
func parseSFString(v string) (string, error) {
	var b strings.Builder
	for i := 1; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\\':
			i++
			if i == len(v) || (v[i] != '"' && v[i] != '\\') {
				return "", &KeyError{Detail: `a backslash in a quoted key may only escape " or \`}
			}
			b.WriteByte(v[i])
		case c == '"':
			if i != len(v)-1 {
				return "", &KeyError{Detail: "the quoted key is followed by more characters; send exactly one quoted string"}
			}
			return b.String(), nil
		case c < 0x20 || c > 0x7e:
			return "", &KeyError{Detail: fmt.Sprintf("byte %d of the field is %s; a key is visible ASCII only", i+1, describe(c))}
		default:
			b.WriteByte(c)
		}
		if b.Len() > MaxKeyLength {
			return "", &KeyError{Detail: fmt.Sprintf("the key is longer than %d bytes", MaxKeyLength)}
		}
	}
	return "", &KeyError{Detail: "the quoted key has no closing double quote"}
}

func bareKeyChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~:/=", c) >= 0
}

func describe(c byte) string {
	if c > 0x20 && c < 0x7f {
		return fmt.Sprintf("%q", string(c))
	}
	return fmt.Sprintf("0x%02X", c)
}

// Fingerprint identifies the request a key was first used with: the SHA-256
// of the validated title, which is all a task is. Comparing the decoded task,
// not the raw body, lets a retry differ in whitespace or key order.
func Fingerprint(title string) string {
	sum := sha256.Sum256([]byte(title))
	return hex.EncodeToString(sum[:])
}
