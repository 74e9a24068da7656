#!/usr/bin/env bash
# Renders CHART_DIR/README.md from the "# --" comments of its values.yaml and its
# README.md.gotmpl, with the pinned helm-docs ($HELM_DOCS, else built by build.sh).
# `make chart-docs` and the test that fails on a stale README both run this script, so
# they cannot disagree on the flags.
set -euo pipefail
chart=${1:?usage: render.sh CHART_DIR}
hd=${HELM_DOCS:-$("$(dirname "$0")/build.sh")}
# helm-docs logs a chart it cannot parse as a warning, skips it and still exits 0: with
# only warnings logged, any output at all is a failure.
# File order: the table explains the keys in the order values.yaml groups them.
out=$("$hd" --chart-search-root "$chart" --sort-values-order file --log-level warning 2>&1)
if [ -n "$out" ]; then
  echo "$out" >&2
  echo "helm-docs did not render $chart/README.md cleanly" >&2
  exit 1
fi
