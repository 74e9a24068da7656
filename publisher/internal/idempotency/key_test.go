package idempotency_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/taskevents/taskevents/publisher/internal/idempotency"
)

func TestParseKey(t *testing.T) {
	long := strings.Repeat("k", idempotency.MaxKeyLength)
	tests := []struct {
		field   string
		want    string
		wantErr string // part of the KeyError's detail; "" means valid
	}{
		{field: `"8e03978e-40d5-43e8-bc93-6894a57f9324"`, want: "8e03978e-40d5-43e8-bc93-6894a57f9324"},
		{field: `8e03978e-40d5-43e8-bc93-6894a57f9324`, want: "8e03978e-40d5-43e8-bc93-6894a57f9324"},
		{field: ` "abc"	`, want: "abc"},
		{field: `"a b"`, want: "a b"},
		{field: `"say \"hi\" \\ bye"`, want: `say "hi" \ bye`},
		{field: `dGVzdA==`, want: "dGVzdA=="},
		{field: `urn:uuid:1/2`, want: "urn:uuid:1/2"},
		{field: "!#$%&'*+-.^_`|~", want: "!#$%&'*+-.^_`|~"},
		{field: long, want: long},
		{field: `"` + long + `"`, want: long},

		{field: ``, wantErr: "empty"},
		{field: `   `, wantErr: "empty"},
		{field: `""`, wantErr: "empty"},
		{field: long + "k", wantErr: "256 bytes long; at most 255"},
		{field: `"` + long + `k"`, wantErr: "longer than 255"},
		{field: `a b`, wantErr: `byte 2 of the field is 0x20`},
		{field: `a,b`, wantErr: `byte 2 of the field is ","`},
		{field: `ab"`, wantErr: `byte 3 of the field is "\""`},
		{field: "caf\xc3\xa9", wantErr: "byte 4 of the field is 0xC3"},
		{field: "\"tab\there\"", wantErr: "0x09; a key is visible ASCII only"},
		{field: "\"del\x7f\"", wantErr: "0x7F"},
		{field: `"abc`, wantErr: "no closing double quote"},
		{field: `"abc\"`, wantErr: "no closing double quote"},
		{field: `"a\b"`, wantErr: "backslash"},
		{field: `"abc";p=1`, wantErr: "followed by more characters"},
		{field: `"abc" "def"`, wantErr: "followed by more characters"},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			got, err := idempotency.ParseKey(tt.field)
			if tt.wantErr == "" {
				if err != nil || got != tt.want {
					t.Fatalf("ParseKey(%q) = %q, %v; want %q", tt.field, got, err, tt.want)
				}
				return
			}
			var ke *idempotency.KeyError
			if !errors.As(err, &ke) || !strings.Contains(ke.Detail, tt.wantErr) {
				t.Fatalf("ParseKey(%q) = %q, %v; want a KeyError containing %q", tt.field, got, err, tt.wantErr)
			}
		})
	}
}

func TestFromHeader(t *testing.T) {
	header := func(values ...string) http.Header {
		h := http.Header{}
		for _, v := range values {
			h.Add("Idempotency-Key", v)
		}
		return h
	}
	if _, present, err := idempotency.FromHeader(header()); present || err != nil {
		t.Errorf("no header: present %v, err %v; want neither", present, err)
	}
	if _, present, err := idempotency.FromHeader(header("")); !present || err == nil {
		t.Errorf("empty header: present %v, err %v; want present and an error", present, err)
	}
	if _, _, err := idempotency.FromHeader(header("a", "b")); err == nil || !strings.Contains(err.Error(), "more than one") {
		t.Errorf("two fields: err %v, want one about more than one field", err)
	}

	quoted, _, err := idempotency.FromHeader(header(`"abc"`))
	if err != nil {
		t.Fatal(err)
	}
	bare, _, _ := idempotency.FromHeader(header("abc"))
	other, _, _ := idempotency.FromHeader(header("abd"))
	if quoted.ID() != bare.ID() || quoted.ID() == other.ID() {
		t.Errorf(`IDs of "abc", abc, abd = %s, %s, %s; want the first two equal and the third different`,
			quoted.ID(), bare.ID(), other.ID())
	}
	// The store key is namespaced and never carries the client's value.
	const sha256OfABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	if quoted.ID() != "idempotency-"+sha256OfABC {
		t.Errorf("ID = %s, want idempotency-<sha256 of the key>", quoted.ID())
	}
}

func TestFingerprint(t *testing.T) {
	const sha256OfBuyMilk = "df3db8a9ea05f22ce0238a243ce14e9e7829f22b5fdec7e6536f656849e46db1"
	if got := idempotency.Fingerprint("Buy milk"); got != sha256OfBuyMilk || got == idempotency.Fingerprint("Buy milk ") {
		t.Errorf("Fingerprint(%q) = %s, want the SHA-256 of the exact title", "Buy milk", got)
	}
}

// FuzzParseKey checks the parser's promises on any input: it never panics, and
// whatever it accepts is 1 to 255 bytes of printable ASCII that parses the
// same when sent back quoted.
func FuzzParseKey(f *testing.F) {
	for _, s := range []string{`"abc"`, `abc`, `"a\"b"`, `"a\\b"`, `""`, `"`, `\`, `"abc";x`, "a\x00", `dGVzdA==`,
		strings.Repeat("x", 256), `"` + strings.Repeat("y", 255) + `"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, field string) {
		key, err := idempotency.ParseKey(field)
		if err != nil {
			var ke *idempotency.KeyError
			if !errors.As(err, &ke) || ke.Detail == "" {
				t.Fatalf("ParseKey(%q) error %v is not a KeyError with a detail", field, err)
			}
			return
		}
		if key == "" || len(key) > idempotency.MaxKeyLength {
			t.Fatalf("ParseKey(%q) = %q: length %d outside 1..%d", field, key, len(key), idempotency.MaxKeyLength)
		}
		for i := 0; i < len(key); i++ {
			if key[i] < 0x20 || key[i] > 0x7e {
				t.Fatalf("ParseKey(%q) = %q holds byte 0x%02X", field, key, key[i])
			}
		}
		requoted := `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(key) + `"`
		if again, err := idempotency.ParseKey(requoted); err != nil || again != key {
			t.Fatalf("ParseKey(%q) = %q, but its quoted form %s parses to %q, %v", field, key, requoted, again, err)
		}
	})
}
