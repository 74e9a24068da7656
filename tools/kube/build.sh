#!/usr/bin/env bash
# Builds the pinned Kubernetes binaries once per machine into a cache outside the work tree
# and prints the directory holding them: kube-apiserver and kubectl for the chart's schema
# tests, plus kube-controller-manager, kube-scheduler, kubelet and kube-proxy for the
# single-node cluster. One `go build` shares the compiled packages between them.
# Cold: about 15 minutes on 2 cores.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=$(cd "$here" && GOWORK=off go list -m -f '{{.Version}}' k8s.io/kubernetes)
cache=${TASKEVENTS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/taskevents}
out=$cache/kube-$version
cmds=(kube-apiserver kubectl kube-controller-manager kube-scheduler kubelet kube-proxy)
missing=()
for cmd in "${cmds[@]}"; do
  [ -x "$out/$cmd" ] || missing+=("$cmd")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "$out"
  exit 0
fi
mkdir -p "$out"
echo "building ${missing[*]} $version into $out (about 15 minutes on a cold machine)..." >&2
tmp=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
pkgs=()
for cmd in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$cmd"); done
# The same -X flags as Kubernetes' own build (hack/lib/version.sh), so every binary and the
# node's kubeletVersion report the pinned release instead of v0.0.0.
(cd "$here" && GOWORK=off CGO_ENABLED=0 go build -trimpath \
  -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$version -X k8s.io/client-go/pkg/version.gitVersion=$version" \
  -o "$tmp/" "${pkgs[@]}")
for cmd in "${missing[@]}"; do mv "$tmp/$cmd" "$out/$cmd"; done
echo "$out"
