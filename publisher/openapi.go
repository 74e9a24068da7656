package main

import _ "embed"

// openAPI is the API's description, served at GET /openapi.yaml; the
// end-to-end tests validate real responses against this same file.
//
//go:embed openapi.yaml
var openAPI []byte
