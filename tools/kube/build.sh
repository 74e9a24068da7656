#!/usr/bin/env bash
# Builds the pinned kube-apiserver and kubectl once per machine into a cache outside the
# work tree and prints the directory holding them. Cold: about 7 minutes on 2 cores.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=$(cd "$here" && GOWORK=off go list -m -f '{{.Version}}' k8s.io/kubernetes)
cache=${TASKEVENTS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/taskevents}
out=$cache/kube-$version
if [ -x "$out/kube-apiserver" ] && [ -x "$out/kubectl" ]; then
  echo "$out"
  exit 0
fi
mkdir -p "$out"
echo "building kube-apiserver and kubectl $version into $out (about 7 minutes on a cold machine)..." >&2
for cmd in kube-apiserver kubectl; do
  (cd "$here" && GOWORK=off CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$version -X k8s.io/client-go/pkg/version.gitVersion=$version" \
    -o "$out/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd")
  mv "$out/$cmd.tmp" "$out/$cmd"
done
echo "$out"
