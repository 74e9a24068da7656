#!/usr/bin/env bash
# Installs the pinned schemathesis CLI (property-based testing of an API from its OpenAPI
# document; `make fuzz-api` runs it against the publisher) from PyPI, once per machine, into
# a Python venv in a cache outside the work tree, as requirements.txt pins it; prints the
# path of its `st` command. A warm call returns at once.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/../lib/pip-venv.sh" schemathesis "$here/requirements.txt" st
