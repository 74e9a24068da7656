#!/usr/bin/env bash
# Builds the pinned Prometheus server and promtool once per machine into a cache outside the
# work tree and prints the directory that holds both, for the e2e test that scrapes the apps and
# their sidecars, evaluates the chart's alerting rules and runs every dashboard query.
# Cold (empty Go build cache, modules downloaded): about 3.5 minutes on 2 cores; promtool adds
# about a fifth of the packages compiled (its Kubernetes discovery). A warm call returns at once.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=$(cd "$here" && GOWORK=off go list -m -f '{{.Version}}' github.com/prometheus/prometheus)
# Module v0.316.0 is Prometheus 3.16.0 (Prometheus tags its Go module as 0.<minor*100+patch>).
minor=${version#v0.}
minor=${minor%%.*}
release=$((minor / 100)).$((minor % 100)).${version##*.}
cache=${TASKEVENTS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/taskevents}
dir=$cache/prometheus-$version
# `prometheus --version` prints "prometheus, version 3.16.0 (branch: ..., revision: ...)".
reports() { "$dir/$1" --version 2>/dev/null | sed -n '1s/^[a-z]*, version \([^ ]*\).*/\1/p'; }
if [ -x "$dir/prometheus" ] && [ -x "$dir/promtool" ] &&
  [ "$(reports prometheus)" = "$release" ] && [ "$(reports promtool)" = "$release" ]; then
  echo "$dir"
  exit 0
fi
mkdir -p "$dir"
echo "building prometheus $release ($version) into $dir (about 3.5 minutes on a cold machine)..." >&2
# Tags: Prometheus's .promu.yml builds with netgo and builtinassets. builtinassets embeds the
# web UI, which the tests never open, so it is left out (the UI is then served from a directory
# that does not exist; the HTTP API is unaffected). remove_all_sd drops every service-discovery
# plugin but file and http from the server: the tests list static targets. promtool imports
# the Kubernetes discovery itself, so its build still compiles client-go.
# The version is set as promu does; the module zip has no git revision.
tmp=$dir/tmp.$$
trap 'rm -rf "$tmp"' EXIT
(cd "$here" && GOWORK=off CGO_ENABLED=0 go build -trimpath -tags netgo,remove_all_sd \
  -ldflags "-s -w -X github.com/prometheus/common/version.Version=$release -X github.com/prometheus/common/version.Branch=$version" \
  -o "$tmp/" github.com/prometheus/prometheus/cmd/prometheus github.com/prometheus/prometheus/cmd/promtool)
for b in prometheus promtool; do
  mv "$tmp/$b" "$dir/$b"
  got=$(reports "$b")
  if [ "$got" != "$release" ]; then
    echo "built $b reports version '$got', want $release" >&2
    exit 1
  fi
done
echo "$dir"
