#!/bin/sh
# Set up gossipcert with its development tools in ./.venv, lint and type-check it, and run
# the whole test suite, slow and Docker tests included. As root it first installs and
# starts the system tools the suite uses (scripts/ci-setup.sh: Docker, iptables, serf,
# chromium); elsewhere the tests that need them skip with the reason.
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" = "0" ]; then
    sh scripts/ci-setup.sh
else
    echo "test.sh: not root; Docker, packet-plane and browser tests may skip" >&2
fi
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
.venv/bin/ruff check .
sh scripts/typecheck.sh
exec .venv/bin/pytest -m "slow or docker or not slow" "$@"
