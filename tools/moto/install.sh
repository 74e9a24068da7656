#!/usr/bin/env bash
# Installs the pinned moto server (a local AWS emulator: SNS, SQS and STS for Dapr's
# pubsub.aws.snssqs component) from PyPI, once per machine, into a Python venv in a cache
# outside the work tree, as requirements.txt pins it; prints the path of moto_server.
# A warm call returns at once.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
reqs=$here/requirements.txt
version=$(sed -n 's/^moto==\(.*\)$/\1/p' "$reqs")
cache=${TASKEVENTS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/taskevents}
dir=$cache/moto-$version
venv=$dir/venv
server=$venv/bin/moto_server
# The stamp is written last and names the requirements it came from, so an interrupted
# install or changed pins install again. The venv's python is a link to the interpreter
# that made it: if that one is gone, so is the venv.
stamp=$(sha256sum "$reqs" | cut -d' ' -f1)
installed() { [ -f "$dir/.complete" ] && [ "$(cat "$dir/.complete")" = "$stamp" ] && [ -x "$venv/bin/python" ] && [ -x "$server" ]; }
if installed; then
  echo "$server"
  exit 0
fi
# Debian's interpreter (python3-venv gives it venv and ensurepip), which outlives any
# pyenv version; PYTHON picks another.
python=${PYTHON:-}
if [ -z "$python" ]; then
  if [ -x /usr/bin/python3 ]; then python=/usr/bin/python3; else python=$(command -v python3 || true); fi
fi
if [ -z "$python" ] || ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "python3 with venv is not installed: run make prereqs (apt-get install -y python3 python3-venv)" >&2
  exit 1
fi
mkdir -p "$dir"
# One install at a time (make and the tests may both ask); the second one finds it done.
exec 9>"$dir/.lock"
flock 9
if installed; then
  echo "$server"
  exit 0
fi
echo "installing moto $version (moto_server and its dependencies) from PyPI into $venv..." >&2
rm -rf "$venv" "$dir/.complete"
log=$dir/install.log
if ! { "$python" -m venv "$venv" && "$venv/bin/python" -m pip install --disable-pip-version-check \
  --no-input -q -r "$reqs"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "installing moto failed (pip's output above, also in $log)" >&2
  exit 1
fi
echo "$stamp" >"$dir/.complete"
echo "$server"
