#!/usr/bin/env bash
# Installs the pinned moto server (a local AWS emulator: SNS, SQS and STS for Dapr's
# pubsub.aws.snssqs component) from PyPI, once per machine, into a Python venv in a cache
# outside the work tree, as requirements.txt pins it; prints the path of moto_server.
# A warm call returns at once.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/../lib/pip-venv.sh" moto "$here/requirements.txt" moto_server
