package tracing

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
)

// The exporters OTEL_TRACES_EXPORTER names.
const (
	ExporterOTLP    = "otlp"
	ExporterConsole = "console"
	exporterNone    = "none"
)

// The protocols OTEL_EXPORTER_OTLP_PROTOCOL names.
const (
	ProtocolHTTPProtobuf = "http/protobuf"
	ProtocolHTTPJSON     = "http/json"
	ProtocolGRPC         = "grpc"
)

// samplers are the OTEL_TRACES_SAMPLER values the SDK can build without a
// remote sampling service.
var samplers = []string{
	"always_on", "always_off", "traceidratio",
	"parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio",
}

// defaultTimeout is the OTLP export timeout when OTEL_EXPORTER_OTLP_TIMEOUT
// is not set: the specification's 10 s.
const defaultTimeout = 10 * time.Second

// Settings is what the OTEL_* variables ask for. The zero value is tracing
// off.
type Settings struct {
	// Exporters is empty when tracing is off; otherwise ExporterOTLP,
	// ExporterConsole or both.
	Exporters []string
	// ServiceName is OTEL_SERVICE_NAME, else service.name from
	// OTEL_RESOURCE_ATTRIBUTES, else the app's default.
	ServiceName string
	// Attributes are OTEL_RESOURCE_ATTRIBUTES without service.name.
	Attributes []attribute.KeyValue
	// Sampler is an OTEL_TRACES_SAMPLER value; SamplerArg its ratio.
	Sampler    string
	SamplerArg float64
	// Protocol is ProtocolHTTPProtobuf, ProtocolHTTPJSON or ProtocolGRPC.
	Protocol string
	// Endpoint is the URL spans go to: for HTTP the full URL, path
	// included (/v1/traces under OTEL_EXPORTER_OTLP_ENDPOINT); for gRPC
	// only its scheme, host and port count.
	Endpoint    string
	Headers     map[string]string
	Timeout     time.Duration
	Gzip        bool
	Certificate string // a PEM file of CA certificates for https, or ""
}

// On reports whether spans are recorded and exported.
func (s Settings) On() bool { return len(s.Exporters) > 0 }

// exports reports whether s names exporter e.
func (s Settings) exports(e string) bool { return slices.Contains(s.Exporters, e) }

// ParseSettings reads the OTEL_* variables of environ (KEY=value pairs, as
// from os.Environ). Tracing is on when an OTLP endpoint is set, or
// OTEL_TRACES_EXPORTER names otlp or console; it is off when none is set,
// when OTEL_TRACES_EXPORTER is none and when OTEL_SDK_DISABLED is true.
// defaultService is the service name when neither OTEL_SERVICE_NAME nor
// OTEL_RESOURCE_ATTRIBUTES gives one. Every error names its variable.
func ParseSettings(environ []string, defaultService string) (Settings, error) {
	vars := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "OTEL_") {
			vars[k] = strings.TrimSpace(v)
		}
	}
	p := parser{vars: vars}
	s := Settings{ServiceName: defaultService, Timeout: defaultTimeout}

	disabled := p.boolean("OTEL_SDK_DISABLED")
	s.Exporters = p.exporters()
	s.ServiceName, s.Attributes = p.resource(defaultService)
	s.Sampler, s.SamplerArg = p.sampler()
	s.Protocol = p.oneOf([]string{ProtocolHTTPProtobuf, ProtocolHTTPJSON, ProtocolGRPC}, ProtocolHTTPProtobuf,
		"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
	s.Endpoint = p.endpoint(s.Protocol)
	s.Headers = p.headers()
	if ms, ok := p.millis("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"); ok {
		s.Timeout = ms
	}
	s.Gzip = p.oneOf([]string{"gzip", "none"}, "none",
		"OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION") == "gzip"
	s.Certificate = p.certificate()

	if len(p.errs) > 0 {
		return Settings{}, errors.Join(p.errs...)
	}
	if disabled {
		s.Exporters = nil
	}
	return s, nil
}

// parser collects every bad value, so that an operator sees them all at
// once, worded as the apps' other config errors are.
type parser struct {
	vars map[string]string
	errs []error
}

func (p *parser) bad(name, why string) {
	p.errs = append(p.errs, fmt.Errorf("config: %s has an invalid value %q: %s", name, p.vars[name], why))
}

// first returns the value of the first of names that is set: a signal's own
// variable (OTEL_EXPORTER_OTLP_TRACES_…) before the general one.
func (p *parser) first(names ...string) (name, value string, ok bool) {
	for _, n := range names {
		if v := p.vars[n]; v != "" {
			return n, v, true
		}
	}
	return "", "", false
}

func (p *parser) boolean(name string) bool {
	switch v := strings.ToLower(p.vars[name]); v {
	case "", "false":
		return false
	case "true":
		return true
	}
	p.bad(name, "want true or false")
	return false
}

// exporters decides whether tracing is on: OTEL_TRACES_EXPORTER when set,
// else an OTLP endpoint. Unlike the SDK's own default (otlp to localhost),
// nothing set means off, so that an app without a collector pays nothing.
func (p *parser) exporters() []string {
	const name = "OTEL_TRACES_EXPORTER"
	v := p.vars[name]
	if v == "" {
		if _, _, ok := p.first("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"); ok {
			return []string{ExporterOTLP}
		}
		return nil
	}
	var out []string
	for e := range strings.SplitSeq(v, ",") {
		e = strings.TrimSpace(e)
		switch e {
		case ExporterOTLP, ExporterConsole:
			if !slices.Contains(out, e) {
				out = append(out, e)
			}
		case exporterNone:
			if v != exporterNone {
				p.bad(name, "none cannot be combined with other exporters")
				return nil
			}
			return nil
		default:
			p.bad(name, "want otlp, console, otlp,console or none")
			return nil
		}
	}
	return out
}

// resource reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (key=value
// pairs separated by commas, values percent-encoded).
func (p *parser) resource(defaultService string) (string, []attribute.KeyValue) {
	const name = "OTEL_RESOURCE_ATTRIBUTES"
	service := defaultService
	fromAttrs := false
	var attrs []attribute.KeyValue
	if v := p.vars[name]; v != "" {
		pairs, why := parsePairs(v)
		if why != "" {
			p.bad(name, why)
		}
		for _, kv := range pairs {
			if kv[0] == "service.name" {
				service, fromAttrs = kv[1], true
				continue
			}
			attrs = append(attrs, attribute.String(kv[0], kv[1]))
		}
	}
	if v := p.vars["OTEL_SERVICE_NAME"]; v != "" {
		service = v
	} else if fromAttrs && service == "" {
		service = defaultService
	}
	return service, attrs
}

// parsePairs reads the W3C-baggage-like list OTEL_RESOURCE_ATTRIBUTES and
// OTEL_EXPORTER_OTLP_HEADERS use: k1=v1,k2=v2, values percent-encoded.
// why is empty when every pair could be read.
func parsePairs(v string) (pairs [][2]string, why string) {
	for i, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		k, val, ok := strings.Cut(item, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Sprintf("entry %d is not key=value (pairs are separated by commas)", i+1)
		}
		dec, err := url.PathUnescape(strings.TrimSpace(val))
		if err != nil {
			return nil, fmt.Sprintf("the value of %s is not percent-encoded correctly", k)
		}
		pairs = append(pairs, [2]string{k, dec})
	}
	return pairs, ""
}

func (p *parser) sampler() (string, float64) {
	const name, argName = "OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG"
	s := p.vars[name]
	switch {
	case s == "":
		s = "parentbased_always_on"
	case !slices.Contains(samplers, s):
		p.bad(name, "want one of "+strings.Join(samplers, ", "))
	}
	ratio := 1.0
	if a := p.vars[argName]; a != "" && strings.HasSuffix(s, "traceidratio") {
		r, err := strconv.ParseFloat(a, 64)
		if err != nil || r < 0 || r > 1 {
			p.bad(argName, "want a sampling ratio between 0 and 1, such as 0.25")
		}
		ratio = r
	}
	return s, ratio
}

func (p *parser) oneOf(allowed []string, def string, names ...string) string {
	name, v, ok := p.first(names...)
	if !ok {
		return def
	}
	if !slices.Contains(allowed, v) {
		p.bad(name, "want one of "+strings.Join(allowed, ", "))
		return def
	}
	return v
}

// endpoint is where OTLP goes. The signal's own variable is a full URL;
// OTEL_EXPORTER_OTLP_ENDPOINT is a base under which HTTP adds /v1/traces.
func (p *parser) endpoint(protocol string) string {
	grpc := protocol == ProtocolGRPC
	name, v, ok := p.first("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
	if !ok {
		if grpc {
			return "http://localhost:4317"
		}
		return "http://localhost:4318/v1/traces"
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		example := "http://otel-collector:4318"
		if grpc {
			example = "http://otel-collector:4317"
		}
		p.bad(name, "want an http:// or https:// URL such as "+example)
		return ""
	}
	if grpc {
		return u.Scheme + "://" + u.Host
	}
	if name == "OTEL_EXPORTER_OTLP_ENDPOINT" {
		u.Path = path.Join("/", u.Path, "v1/traces")
	} else if u.Path == "" {
		u.Path = "/"
	}
	return u.String()
}

// headers reads OTEL_EXPORTER_OTLP_(TRACES_)HEADERS. They often carry an
// API key, so an error describes the value without quoting it.
func (p *parser) headers() map[string]string {
	name, v, ok := p.first("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")
	if !ok {
		return nil
	}
	pairs, why := parsePairs(v)
	if why != "" {
		p.errs = append(p.errs, fmt.Errorf("config: %s is malformed: %s; its value is not shown because it may hold credentials", name, why))
		return nil
	}
	h := make(map[string]string, len(pairs))
	for _, kv := range pairs {
		h[kv[0]] = kv[1]
	}
	return h
}

func (p *parser) millis(names ...string) (time.Duration, bool) {
	name, v, ok := p.first(names...)
	if !ok {
		return 0, false
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms <= 0 || ms > int64(time.Hour/time.Millisecond) {
		p.bad(name, "want a whole number of milliseconds between 1 and 3600000, such as 10000")
		return 0, false
	}
	return time.Duration(ms) * time.Millisecond, true
}

// certificate is checked here, so that a missing file stops the app at
// start, not at its first export.
func (p *parser) certificate() string {
	name, v, ok := p.first("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "OTEL_EXPORTER_OTLP_CERTIFICATE")
	if !ok {
		return ""
	}
	if _, err := os.Stat(v); err != nil {
		p.bad(name, "want the path of a PEM file of CA certificates: "+err.Error())
		return ""
	}
	return v
}
