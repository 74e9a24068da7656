#!/usr/bin/env bash
# Installs the Debian packages the local run and the tests need, when they are missing.
# As root it installs them; otherwise it prints the exact command and fails.
set -euo pipefail
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
cmd="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "missing: ${missing[*]}. Install with: sudo sh -c '$cmd'" >&2
  exit 1
fi
echo "installing ${missing[*]}..." >&2
sh -c "$cmd" >&2
# Debian starts a system-wide redis-server on 6379 after install; the project starts its
# own instances on free ports, so the packaged service is stopped and disabled.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet redis-server 2>/dev/null; then
  systemctl disable --now redis-server >/dev/null 2>&1 || true
fi
pkill -x redis-server 2>/dev/null || true
