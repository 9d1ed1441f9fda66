#!/bin/sh
# Set up gossipcert with its development tools in ./.venv, lint and type-check it, and run
# the whole test suite, slow and Docker tests included. As root it first installs and
# starts the system tools the suite uses (scripts/ci-setup.sh: Docker, iptables, serf,
# chromium); elsewhere the tests that need them skip with the reason. Arguments go to
# pytest. The wall time of each phase is printed at the end, whatever the outcome.
set -eu
cd "$(dirname "$0")/.."

started=$(date +%s)
mark=$started
times=""
phase_done() {
    now=$(date +%s)
    times="$times$1 $((now - mark)) s, "
    mark=$now
}
report_times() {
    echo "test.sh: wall time: ${times}total $(( $(date +%s) - started )) s" >&2
}
trap report_times EXIT

if [ "$(id -u)" = "0" ]; then
    sh scripts/ci-setup.sh
else
    echo "test.sh: not root; Docker, packet-plane and browser tests may skip" >&2
fi
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
phase_done setup
.venv/bin/ruff check .
phase_done lint
sh scripts/typecheck.sh
phase_done type-check
status=0
.venv/bin/pytest -m "slow or docker or not slow" "$@" || status=$?
phase_done tests
exit "$status"
