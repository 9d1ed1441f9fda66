"""Sequences of operations run on reference cores in the simulator, for the tests.

Hand-written sequences get the settle of :mod:`harness.workloads.settle` appended, so
every timed requirement's deadline has passed when the history is judged. Generated ones
come from the harness's one generator (:mod:`harness.workloads.strategies`), whose
sequences end settled on their own and run as drawn. Either saves as a replay file
(:mod:`harness.run.replay`) holding exactly what ran, which ``gossipcert replay`` runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gossipcert.harness.history import Entry
from gossipcert.harness.judging.verdict import Requirement, Verdict, load_catalogue
from gossipcert.harness.manifest import load_manifest
from gossipcert.harness.run.pipeline import simulate
from gossipcert.harness.run.replay import ReplayFile, save_replay
from gossipcert.harness.workloads.operations import Op
from gossipcert.harness.workloads.settle import settle_ms, settle_ops

IMPLS = Path(__file__).resolve().parent / "impls"


def defect_core(name: str) -> str:
    """The simulator's name for the seeded defect ``tests/impls/NAME``'s patched core."""
    return f"{IMPLS / name / 'defect.py'}:installed"


def reference_timing() -> dict[str, Any]:
    """The timing the reference manifest declares (what the simulator runs by default)."""
    return dict(load_manifest("reference").timing)


def settled(ops: Sequence[Op], nodes: Sequence[str], *,
            timing: dict[str, Any] | None = None,
            catalogue: Sequence[Requirement] | None = None) -> list[Op]:
    """``ops``, then a settle long enough for every timed requirement of ``catalogue``."""
    catalogue = list(catalogue if catalogue is not None else load_catalogue())
    timing = timing if timing is not None else reference_timing()
    return [*ops, *settle_ops(settle_ms(timing, len(nodes), catalogue))]


def run_settled(ops: Sequence[Op], nodes: Sequence[str], *, core: str = "",
                policy: str = "lww", timing: dict[str, Any] | None = None,
                catalogue: Sequence[Requirement] | None = None,
                ) -> tuple[list[Verdict], list[Entry]]:
    """Run ``ops`` and a settle on a fresh simulated cluster; judge its history."""
    catalogue = list(catalogue if catalogue is not None else load_catalogue())
    timing = timing if timing is not None else reference_timing()
    return simulate(settled(ops, nodes, timing=timing, catalogue=catalogue), list(nodes),
                    timing=timing, policy=policy, core=core, catalogue=catalogue)


def save_run(path: Path, ops: Sequence[Op], nodes: Sequence[str], *, core: str = "",
             policy: str = "lww", timing: dict[str, Any] | None = None,
             failed: Sequence[Verdict] = ()) -> None:
    """Write a simulated run of ``ops`` (exactly as it ran) as a replay file, with the
    MUST requirements it failed."""
    failure = ({"requirements": [v.id for v in failed], "evidence": failed[0].evidence}
               if failed else None)
    save_replay(path, ReplayFile(
        nodes=list(nodes), ops=list(ops), implementation="reference", backend="simulation",
        timing=timing if timing is not None else reference_timing(),
        conflict_policy=policy, core=core, failure=failure))
