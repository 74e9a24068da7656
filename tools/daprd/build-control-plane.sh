#!/usr/bin/env bash
# Builds the Dapr control plane of the pinned release (operator, injector, sentry, placement,
# scheduler) once per machine into a cache outside the work tree and prints the directory
# holding them, for the single-node Kubernetes cluster of the e2e tests. Same module, tags
# and -X flags as build.sh's daprd, so the compiled packages it left in the build cache are
# reused; one `go build` shares the rest between the five. A warm call returns at once.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=$(cd "$here" && GOWORK=off go list -m -f '{{.Version}}' github.com/dapr/dapr)
version=${version#v}
cache=${TASKEVENTS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/taskevents}
out=$cache/dapr-control-plane-v$version
cmds=(operator injector sentry placement scheduler)
pkg=github.com/dapr/dapr
# None of the five has a --version flag; the dapr module version recorded in each one
# (`go version -m`) tells what it was built from.
built_from() { GOWORK=off go version -m "$1" 2>/dev/null | awk -v m="$pkg" '($1 == "mod" || $1 == "dep") && $2 == m { print $3 }'; }
missing=()
for cmd in "${cmds[@]}"; do
  if [ ! -x "$out/$cmd" ] || [ "$(built_from "$out/$cmd")" != "v$version" ]; then missing+=("$cmd"); fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "$out"
  exit 0
fi
mkdir -p "$out"
echo "building dapr ${missing[*]} $version into $out (a few minutes after build.sh, longer on a cold machine)..." >&2
tmp=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
pkgs=()
for cmd in "${missing[@]}"; do pkgs+=("$pkg/cmd/$cmd"); done
# dapr's Makefile builds every binary with the sidecar flavor's tags and these -X flags.
(cd "$here" && GOWORK=off CGO_ENABLED=0 go build -trimpath -tags allcomponents \
  -ldflags "-s -w -X $pkg/pkg/buildinfo.version=$version -X $pkg/pkg/buildinfo.gitversion=v$version" \
  -o "$tmp/" "${pkgs[@]}")
for cmd in "${missing[@]}"; do
  got=$(built_from "$tmp/$cmd")
  if [ "$got" != "v$version" ]; then
    echo "built $cmd is from $pkg '$got', want v$version" >&2
    exit 1
  fi
  mv "$tmp/$cmd" "$out/$cmd"
done
echo "$out"
