#!/usr/bin/env bash
# Usage: pip-venv.sh PACKAGE REQUIREMENTS ENTRYPOINT
# Installs the requirements file (which pins PACKAGE==version) from PyPI, once per machine,
# into a Python venv in a cache outside the work tree, checks that the venv's ENTRYPOINT
# runs (--help), and prints its path. A warm call returns at once. tools/moto and
# tools/schemathesis call it with their own pins.
set -euo pipefail
package=$1 reqs=$2 entry=$3
version=$(sed -n "s/^$package==\(.*\)\$/\1/p" "$reqs")
if [ -z "$version" ]; then
  echo "$reqs does not pin $package==<version>" >&2
  exit 1
fi
cache=${TASKEVENTS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/taskevents}
dir=$cache/$package-$version
venv=$dir/venv
bin=$venv/bin/$entry
# The stamp is written last and names the requirements it came from, so an interrupted
# install or changed pins install again. The venv's python is a link to the interpreter
# that made it: if that one is gone, so is the venv.
stamp=$(sha256sum "$reqs" | cut -d' ' -f1)
installed() { [ -f "$dir/.complete" ] && [ "$(cat "$dir/.complete")" = "$stamp" ] && [ -x "$venv/bin/python" ] && [ -x "$bin" ]; }
if installed; then
  echo "$bin"
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
  echo "$bin"
  exit 0
fi
echo "installing $package $version and its dependencies from PyPI into $venv..." >&2
rm -rf "$venv" "$dir/.complete"
log=$dir/install.log
if ! { "$python" -m venv "$venv" && "$venv/bin/python" -m pip install --disable-pip-version-check \
  --no-input -q -r "$reqs"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "installing $package failed (pip's output above, also in $log)" >&2
  exit 1
fi
# Fails here, not in the middle of a test, if the install is unusable.
if ! "$bin" --help >>"$log" 2>&1; then
  cat "$log" >&2
  echo "the installed $entry does not run (output above, also in $log)" >&2
  exit 1
fi
echo "$stamp" >"$dir/.complete"
echo "$bin"
