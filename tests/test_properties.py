"""Property-based certification in memory: the reference core holds every requirement
under generated workloads and fault schedules; a seeded defect is found, shrunk to a
minimal schedule, saved, and replayed by ``gossipcert replay``.

``HYPOTHESIS_PROFILE=long`` searches much longer (the default is the ``ci`` budget).
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
from gossipcert.harness.commands.cli import main
from gossipcert.harness.workloads import operations as o
from gossipcert.harness.workloads.broadcast import Broadcast
from gossipcert.harness.workloads.faults import Kill, Partition, Restart
from gossipcert.harness.workloads.kv import Put
from gossipcert.harness.workloads.operations import Op
from gossipcert.harness.workloads.properties import (
    ClusterMachine,
    Schedule,
    failures,
    load_schedule,
    run_schedule,
    save_schedule,
    schedules,
)
from hypothesis import given, settings
from hypothesis.stateful import run_state_machine_as_test

IMPLS = Path(__file__).resolve().parent / "impls"
TIEBREAK = f"{IMPLS / 'lww_wrong_tiebreak' / 'defect.py'}:installed"
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")


@pytest.mark.slow
@settings(settings.get_profile(PROFILE))
@given(ops=schedules(("n1", "n2", "n3"), membership=True))
def test_reference_core_holds_every_requirement_under_generated_schedules(
    ops: list[Op],
) -> None:
    verdicts, _ = run_schedule(Schedule(nodes=["n1", "n2", "n3"], ops=ops))
    failed = failures(verdicts)
    assert not failed, [(v.id, v.evidence) for v in failed]


class ReferenceMachine(ClusterMachine):
    pass


@pytest.mark.slow
def test_reference_core_state_machine() -> None:
    run_state_machine_as_test(
        ReferenceMachine, settings=settings(settings.get_profile(PROFILE), stateful_step_count=6)
    )


def find_and_shrink(core: str, saved: Path) -> None:
    """Search schedules against ``core``; every failing run overwrites ``saved``, so the
    file ends up holding the shrunk example (Hypothesis replays it last)."""

    @settings(settings.get_profile("ci"), max_examples=200)
    @given(ops=schedules(("n1", "n2", "n3"), faults=False, keys=("k0",)))
    def search(ops: list[Op]) -> None:
        schedule = Schedule(nodes=["n1", "n2", "n3"], ops=ops, core=core)
        failed = failures(run_schedule(schedule)[0])
        if failed:
            schedule.failure = {"requirements": [v.id for v in failed]}
            save_schedule(saved, schedule)
            raise AssertionError("; ".join(f"{v.id}: {v.evidence}" for v in failed))

    search()


@pytest.mark.slow
def test_seeded_tiebreak_defect_is_found_shrunk_saved_and_replayed(tmp_path: Path) -> None:
    saved = tmp_path / "shrunk.json"
    with pytest.raises(AssertionError, match="KV-LWW"):
        find_and_shrink(TIEBREAK, saved)
    data = json.loads(saved.read_text())
    assert data["format"] == "gossipcert-ops/1"
    assert "KV-LWW" in data["failure"]["requirements"]
    # The file holds what ran: the shrunk sequence, then the settle (from its heal on).
    found = data["ops"][: data["ops"].index({"op": "heal"})]
    writes = [s for s in found if s["op"] in ("put", "delete")]
    # Small: puts of the one key from at least two nodes at the same instant (a timestamp
    # tie), and at most one wait (a tie needs clocks clear of the start-up traffic).
    others = [s for s in found if s not in writes]
    assert len(found) <= 4 and all(s["op"] == "wait" for s in others), found
    assert {w["key"] for w in writes} == {"k0"} and len({w["node"] for w in writes}) >= 2
    # Shrunk: without any one of its operations the sequence fails nothing. Hypothesis
    # guarantees this local minimum, not the smallest sequence overall: which one it
    # settles on depends on the examples it drew (two puts, or a third one the tie needs).
    shrunk = load_schedule(saved)
    settle = shrunk.ops[len(found):]
    for i in range(len(found)):
        fewer = replace(shrunk, ops=[*shrunk.ops[:i], *shrunk.ops[i + 1:len(found)], *settle])
        assert not failures(run_schedule(fewer)[0]), (i, found)

    assert main(["replay", str(saved)]) == 1
    fixed = load_schedule(saved)
    fixed.core = ""
    save_schedule(tmp_path / "fixed.json", fixed)
    assert main(["replay", str(tmp_path / "fixed.json")]) == 0


def test_replay_refuses_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["replay", str(bad)]) == 2
    assert "is not JSON" in capsys.readouterr().err
    bad.write_text(
        json.dumps(
            {"format": "gossipcert-ops/1", "nodes": ["a", "b"], "ops": [{"op": "jump"}]}
        )
    )
    assert main(["replay", str(bad)]) == 2
    assert "unknown op 'jump'" in capsys.readouterr().err
    bad.write_text(
        json.dumps(
            {
                "format": "gossipcert-ops/1",
                "nodes": ["a", "b"],
                "ops": [{"op": "heal"}],
                "core": "no/such/file.py:installed",
            }
        )
    )
    assert main(["replay", str(bad)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["replay", str(tmp_path / "missing.json")]) == 2


def test_a_schedule_replays_to_identical_verdicts() -> None:
    ops: list[Op] = [
        Put("n1", "k", "a"),
        Kill("n3"),
        Broadcast("n2", "b"),
        o.Wait(200, observe=False),
        Partition((("n1",), ("n2", "n3"))),
        Restart("n3"),
    ]
    schedule = Schedule(nodes=["n1", "n2", "n3"], ops=ops)
    first, _ = run_schedule(schedule)
    second, _ = run_schedule(schedule)
    assert [(v.id, v.status, v.measured) for v in first] == [
        (v.id, v.status, v.measured) for v in second
    ]
    assert not failures(first), [(v.id, v.evidence) for v in failures(first)]
