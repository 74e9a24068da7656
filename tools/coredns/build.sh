#!/usr/bin/env bash
# Builds the pinned CoreDNS once per machine into a cache outside the work tree and prints
# its path, for the cluster DNS of the single-node Kubernetes cluster of the e2e tests.
# Cold: a few minutes on 2 cores; a warm call returns at once.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=$(cd "$here" && GOWORK=off go list -m -f '{{.Version}}' github.com/coredns/coredns)
cache=${TASKEVENTS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/taskevents}
out=$cache/coredns-$version/coredns
# `coredns -version` prints "CoreDNS-1.15.0" and then the platform line.
if [ -x "$out" ] && [ "$("$out" -version 2>/dev/null | sed -n 1p)" = "CoreDNS-${version#v}" ]; then
  echo "$out"
  exit 0
fi
mkdir -p "$(dirname "$out")"
echo "building coredns $version into $out (a few minutes on a cold machine)..." >&2
# The release version is a constant in coremain (no -X needed); CoreDNS's Makefile only adds
# the git commit, which the module zip does not have, and builds with -tags grpcnotrace.
(cd "$here" && GOWORK=off CGO_ENABLED=0 go build -trimpath -tags grpcnotrace \
  -ldflags "-s -w" -o "$out.tmp" github.com/coredns/coredns)
mv "$out.tmp" "$out"
got=$("$out" -version | sed -n 1p)
if [ "$got" != "CoreDNS-${version#v}" ]; then
  echo "built coredns reports '$got', want CoreDNS-${version#v}" >&2
  exit 1
fi
echo "$out"
