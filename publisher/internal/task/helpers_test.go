package task_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
)

// jsonUnmarshalStrict decodes exactly one JSON value, rejecting trailing data.
func jsonUnmarshalStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data")
	}
	return nil
}
