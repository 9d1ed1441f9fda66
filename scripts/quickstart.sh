#!/bin/sh
# Set up gossipcert in ./.venv and certify the reference node: 5 local processes, every
# link through the built-in Toxiproxy-compatible server. Prints where the report is.
set -eu
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
exec .venv/bin/gossipcert certify --impl reference --nodes 5 --report-dir gossipcert-runs/quickstart "$@"
