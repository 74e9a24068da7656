#!/usr/bin/env bash
# Builds the pinned Jaeger once per machine into a cache outside the work tree and prints its
# path, for the tracing end-to-end test (TestTrace) and `make run JAEGER=1`. cmd/jaeger is
# Jaeger v2: an OpenTelemetry Collector with Jaeger's storage and query extensions, configured
# by a YAML file (the harness writes one with an in-memory store on free loopback ports).
# Cold: a few minutes on 2 cores; a warm call returns at once.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=$(cd "$here" && GOWORK=off go list -m -f '{{.Version}}' github.com/jaegertracing/jaeger)
cache=${TASKEVENTS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/taskevents}
out=$cache/jaeger-$version/jaeger
# `jaeger version` prints {"gitCommit":…,"gitVersion":…,"buildDate":…}. Jaeger's Makefile sets
# gitVersion from the git tag (v2.13.0 for the module's v1.76.0), which the module zip does
# not have; this build stamps the module version instead, so the check below means "built from
# this module version by this script".
have_version() {
  "$1" version 2>/dev/null | sed -n 's/.*"gitVersion":"\([^"]*\)".*/\1/p'
}
if [ -x "$out" ] && [ "$(have_version "$out")" = "$version" ]; then
  echo "$out"
  exit 0
fi
mkdir -p "$(dirname "$out")"
echo "building jaeger $version into $out (a few minutes on a cold machine)..." >&2
# The module zip has no UI assets (Jaeger's Makefile builds them with npm first), so the
# binary serves a placeholder page at / ; the query API (/api/traces, /api/v3) is complete.
(cd "$here" && GOWORK=off CGO_ENABLED=0 go build -trimpath \
  -ldflags "-s -w -X github.com/jaegertracing/jaeger/internal/version.latestVersion=$version" \
  -o "$out.tmp" github.com/jaegertracing/jaeger/cmd/jaeger)
mv "$out.tmp" "$out"
got=$(have_version "$out")
if [ "$got" != "$version" ]; then
  echo "built jaeger reports gitVersion '$got', want $version" >&2
  exit 1
fi
echo "$out"
