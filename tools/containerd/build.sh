#!/usr/bin/env bash
# Builds the pinned containerd, ctr and containerd-shim-runc-v2 once per machine into a cache
# outside the work tree and prints the directory holding them, for the single-node Kubernetes
# cluster of the e2e tests (runc itself comes from Debian). One `go build` shares the compiled
# packages between the three. Cold: about 70 seconds on 2 cores; a warm call returns at once.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=$(cd "$here" && GOWORK=off go list -m -f '{{.Version}}' github.com/containerd/containerd/v2)
cache=${TASKEVENTS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/taskevents}
out=$cache/containerd-$version
cmds=(containerd ctr containerd-shim-runc-v2)
ok=true
for cmd in "${cmds[@]}"; do
  [ -x "$out/$cmd" ] || ok=false
done
# `containerd --version` prints: containerd <package> <version> <revision>.
if $ok && [ "$("$out/containerd" --version 2>/dev/null | awk '{print $3}')" = "$version" ]; then
  echo "$out"
  exit 0
fi
mkdir -p "$out"
echo "building ${cmds[*]} $version into $out (about 70 seconds on a cold machine)..." >&2
tmp=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
pkg=github.com/containerd/containerd/v2
pkgs=()
for cmd in "${cmds[@]}"; do pkgs+=("$pkg/cmd/$cmd"); done
# The same -X flag as containerd's Makefile sets from `git describe`, so `containerd --version`
# reports the pinned release instead of "2.4.2+unknown" (the module zip has no git revision,
# so version.Revision stays empty). The tags leave out the btrfs, devmapper and zfs
# snapshotters, which need cgo or host libraries; urfave_cli_no_docs is in every upstream build.
(cd "$here" && GOWORK=off CGO_ENABLED=0 go build -trimpath \
  -tags "no_btrfs no_devmapper no_zfs urfave_cli_no_docs" \
  -ldflags "-s -w -X $pkg/version.Version=$version" \
  -o "$tmp/" "${pkgs[@]}")
for cmd in "${cmds[@]}"; do mv "$tmp/$cmd" "$out/$cmd"; done
got=$("$out/containerd" --version | awk '{print $3}')
if [ "$got" != "$version" ]; then
  echo "built containerd reports '$got', want $version" >&2
  exit 1
fi
echo "$out"
