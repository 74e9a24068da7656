#!/usr/bin/env bash
# Installs the Python bench anchors' stack (FastAPI, uvicorn, the dapr SDK and
# dapr-ext-fastapi, as requirements.txt pins them) from PyPI, once per machine, into a venv
# in a cache outside the work tree; prints the path of the venv's uvicorn, which serves both
# Python anchors (publisher/main.py, worker/main.py). A warm call returns at once.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/../../lib/pip-venv.sh" dapr-ext-fastapi "$here/requirements.txt" uvicorn
