"""``gossipcert replay FILE``: run a saved schedule again and judge it.

A schedule file is what the property-based suite writes when it finds a failure and
shrinks it (format ``gossipcert-schedule/1``, see :mod:`harness.properties`):

.. code-block:: json

    {"format": "gossipcert-schedule/1",
     "nodes": ["n1", "n2", "n3"],
     "core": "tests/impls/lww_wrong_tiebreak/defect.py:installed",
     "policy": "lww",
     "timing": {"probe_interval_ms": 300, "...": 0},
     "steps": [{"op": "put", "node": "n1", "key": "k0", "value": "n1-0"},
               {"op": "put", "node": "n2", "key": "k0", "value": "n2-0"},
               {"op": "settle"}],
     "failure": {"requirements": ["KV-LWW"], "evidence": "..."}}

Steps: ``put {node,key,value}``, ``delete {node,key}``, ``broadcast {node,id}``,
``leave {node}``, ``crash {node}``, ``restart {node}``, ``partition {groups}``, ``heal``,
``advance {ms}``, ``settle`` (heal, let every deadline pass, read everything). Replay is
deterministic: the same file gives the same verdicts. Exit 1 while a MUST requirement
still fails, 0 once it passes (the defect is fixed), 2 for a bad file.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from gossipcert.harness.errors import EXIT_FAIL, EXIT_PASS, GossipcertError

__all__ = ["ReplayError", "replay"]


class ReplayError(GossipcertError):
    """The schedule file cannot be replayed (malformed, or its core cannot be loaded)."""


def replay(path: Path, out: Callable[[str], None] = print) -> int:
    """Replay ``path``; print one line per requirement that applies; the exit code."""
    from gossipcert.harness.properties import ScheduleError, failures, load_schedule, run_schedule

    try:
        schedule = load_schedule(path)
        verdicts, cluster = run_schedule(schedule)
    except (ScheduleError, ValueError) as exc:
        raise ReplayError(str(exc)) from None
    out(
        f"replayed {len(schedule.steps)} steps on {len(schedule.nodes)} in-memory nodes "
        f"(core: {schedule.core or 'reference'}); {len(cluster.entries())} history entries"
    )
    for v in verdicts:
        if v.status not in ("untested", "not-claimed"):
            out(f"{v.status.upper():>6}  {v.id:<20} {v.evidence}")
    failed = failures(verdicts)
    if schedule.failure:
        expected = ", ".join(schedule.failure.get("requirements", []))
        out(f"recorded failure: {expected}")
    out(f"verdict: {'FAIL' if failed else 'PASS'}")
    return EXIT_FAIL if failed else EXIT_PASS


if __name__ == "__main__":  # pragma: no cover
    sys.exit(replay(Path(sys.argv[1])))
