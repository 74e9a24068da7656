#!/usr/bin/env bash
# Builds the bench's go-sdk publisher anchor once per machine into a cache outside the work
# tree and prints its path. The cache entry is keyed by a hash of go.mod, go.sum and the Go
# sources (not the tests), so an edit builds again; a warm call returns at once. GOWORK=off: this module is
# outside go.work on purpose (the go-sdk pins its own grpc and dapr/dapr).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${TASKEVENTS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/taskevents}
sdk=$(cd "$here" && GOWORK=off GOFLAGS=-mod=readonly go list -m -f '{{.Version}}' github.com/dapr/go-sdk)
hash=$(cd "$here" && ls ./*.go | grep -v '_test\.go$' | xargs cat go.mod go.sum | sha256sum | cut -c1-12)
dir=$cache/gosdk-publisher-$sdk-$hash
out=$dir/gosdk-publisher
if [ -x "$out" ]; then
  echo "$out"
  exit 0
fi
mkdir -p "$dir"
# One build at a time; the second caller finds it done.
exec 9>"$dir/.lock"
flock 9
if [ -x "$out" ]; then
  echo "$out"
  exit 0
fi
echo "building the go-sdk $sdk publisher anchor into $out (about a minute on a cold machine)..." >&2
# GOFLAGS from the caller (make, CI) is replaced, not inherited: -mod=vendor or -tags meant
# for the apps do not apply here.
(cd "$here" && GOWORK=off GOFLAGS=-mod=readonly CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out.tmp" .)
mv "$out.tmp" "$out"
echo "$out"
