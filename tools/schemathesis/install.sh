#!/usr/bin/env bash
# Installs the pinned schemathesis CLI (property-based testing of an API from its OpenAPI
# document; `make fuzz-api` runs it against the publisher) from PyPI, once per machine, into
# a Python venv in a cache outside the work tree, as requirements.txt pins it; prints the
# path of its `st` command. A warm call returns at once.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
reqs=$here/requirements.txt
version=$(sed -n 's/^schemathesis==\(.*\)$/\1/p' "$reqs")
cache=${TASKEVENTS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/taskevents}
dir=$cache/schemathesis-$version
venv=$dir/venv
st=$venv/bin/st
# The stamp is written last and names the requirements it came from, so an interrupted
# install or changed pins install again. The venv's python is a link to the interpreter
# that made it: if that one is gone, so is the venv.
stamp=$(sha256sum "$reqs" | cut -d' ' -f1)
installed() { [ -f "$dir/.complete" ] && [ "$(cat "$dir/.complete")" = "$stamp" ] && [ -x "$venv/bin/python" ] && [ -x "$st" ]; }
if installed; then
  echo "$st"
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
# One install at a time (two make runs may both ask); the second one finds it done.
exec 9>"$dir/.lock"
flock 9
if installed; then
  echo "$st"
  exit 0
fi
echo "installing schemathesis $version and its dependencies from PyPI into $venv..." >&2
rm -rf "$venv" "$dir/.complete"
log=$dir/install.log
if ! { "$python" -m venv "$venv" && "$venv/bin/python" -m pip install --disable-pip-version-check \
  --no-input -q -r "$reqs"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "installing schemathesis failed (pip's output above, also in $log)" >&2
  exit 1
fi
# Fails here, not in the middle of make fuzz-api, if the install is unusable.
if ! "$st" --version >>"$log" 2>&1; then
  cat "$log" >&2
  echo "the installed st does not run (output above, also in $log)" >&2
  exit 1
fi
echo "$stamp" >"$dir/.complete"
echo "$st"
