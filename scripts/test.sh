#!/bin/sh
# Set up gossipcert with its development tools in ./.venv, lint and type-check it, and run
# the whole test suite, slow tests included.
set -eu
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
.venv/bin/ruff check .
.venv/bin/mypy harness reference_node chaos reports specs
exec .venv/bin/pytest -m "slow or docker or not slow" "$@"
