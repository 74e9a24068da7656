// Package kit holds what the publisher and the worker must do alike: loading
// configuration, logging, the serve-and-drain lifecycle, problem details, tracing
// setup, the sidecar's HTTP client and the bounded memory store. Each app requires
// this module with a relative replace, so it still builds on its own with GOWORK=off.
package kit
