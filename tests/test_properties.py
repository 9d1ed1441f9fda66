"""Property-based certification in memory: the reference core holds every requirement
under sequences from the harness's generator (:mod:`harness.workloads.strategies`, the one
``gossipcert explore`` draws from); a seeded defect is found, shrunk to a minimal
sequence, saved as a replay file, and replayed by ``gossipcert replay``.

``HYPOTHESIS_PROFILE=long`` searches much longer (the default is the ``ci`` budget; the
profiles are registered in ``conftest.py``).
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
from gossipcert.harness.commands.cli import main
from gossipcert.harness.judging.verdict import Verdict, failing_musts
from gossipcert.harness.run.pipeline import simulate
from gossipcert.harness.run.replay import REPLAY_FORMAT, load_replay, save_replay
from gossipcert.harness.workloads import operations as o
from gossipcert.harness.workloads.broadcast import Broadcast
from gossipcert.harness.workloads.capabilities import operation_sequences, simulation_sequences
from gossipcert.harness.workloads.faults import Kill, Partition, Restart
from gossipcert.harness.workloads.kv import Delete, Put
from gossipcert.harness.workloads.operations import Op
from gossipcert.harness.workloads.strategies import Space
from hypothesis import given, settings
from simulated_runs import defect_core, reference_timing, run_settled, save_run

N3 = ["n1", "n2", "n3"]
TIEBREAK = defect_core("lww_wrong_tiebreak")
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")


def must_errors(verdicts: list[Verdict]) -> list[Verdict]:
    """MUST requirements that could not be judged: no failure, but a correct core under
    a sequence it can run should leave none."""
    return [v for v in verdicts if v.level == "MUST" and v.status == "error"]


@pytest.mark.slow
@settings(settings.get_profile(PROFILE))
@given(ops=simulation_sequences(N3))
def test_reference_core_holds_every_requirement_under_generated_sequences(
    ops: list[Op],
) -> None:
    verdicts, _ = simulate(ops, N3)
    wrong = failing_musts(verdicts) + must_errors(verdicts)
    assert not wrong, [(v.id, v.status, v.evidence) for v in wrong]


def find_and_shrink(core: str, saved: Path) -> None:
    """Search kv sequences without faults against ``core``; every failing run overwrites
    ``saved``, so the file ends up holding the shrunk example (Hypothesis replays it
    last)."""
    space = Space(tuple(N3), frozenset({"membership", "failure-detection", "kv"}),
                  reference_timing(), faults=False, keys=1)

    @settings(settings.get_profile("ci"), max_examples=200)
    @given(ops=operation_sequences(space))
    def search(ops: list[Op]) -> None:
        failed = failing_musts(simulate(ops, N3, core=core)[0])
        if failed:
            save_run(saved, ops, N3, core=core, failed=failed)
            raise AssertionError("; ".join(f"{v.id}: {v.evidence}" for v in failed))

    search()


def writes(ops: list[Op]) -> list[Op]:
    """The puts and deletes of ``ops``, those of a race included."""
    out: list[Op] = []
    for op in ops:
        out += writes(list(op.ops)) if isinstance(op, o.Concurrent) else [op]
    return [op for op in out if isinstance(op, (Put, Delete))]


@pytest.mark.slow
def test_seeded_tiebreak_defect_is_found_shrunk_saved_and_replayed(tmp_path: Path) -> None:
    saved = tmp_path / "shrunk.json"
    with pytest.raises(AssertionError, match="KV-LWW"):
        find_and_shrink(TIEBREAK, saved)
    data = json.loads(saved.read_text())
    assert data["format"] == REPLAY_FORMAT
    assert "KV-LWW" in data["failure"]["requirements"]
    # The file holds what ran: the members awaited, the drawn steps, then the end of the
    # sequence (from its await of convergence on).
    shrunk = load_replay(saved)
    end = next(i for i, op in enumerate(shrunk.ops) if isinstance(op, o.AwaitConvergence))
    start, found, tail = shrunk.ops[:1], shrunk.ops[1:end], shrunk.ops[end:]
    assert isinstance(start[0], o.AwaitMembers), shrunk.ops
    # Small: puts of the one key from at least two nodes at the same instant (a timestamp
    # tie, a race or puts with no time between), and at most one wait.
    put = writes(found)
    others = [s for s in found if not writes([s])]
    assert len(found) <= 4 and all(isinstance(s, o.Wait) for s in others), found
    assert {w.key for w in put} == {"k0"} and len({w.node for w in put}) >= 2, found
    # Shrunk: without any one of its steps the sequence fails nothing. Hypothesis
    # guarantees this local minimum, not the smallest sequence overall.
    for i in range(len(found)):
        fewer = [*start, *found[:i], *found[i + 1:], *tail]
        assert not failing_musts(simulate(fewer, N3, core=TIEBREAK)[0]), (i, found)

    assert main(["replay", str(saved)]) == 1
    save_replay(tmp_path / "fixed.json", replace(shrunk, core=""))
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


def test_a_sequence_replays_to_identical_verdicts() -> None:
    ops: list[Op] = [
        Put("n1", "k", "a"),
        Kill("n3"),
        Broadcast("n2", "b"),
        o.Wait(200, observe=False),
        Partition((("n1",), ("n2", "n3"))),
        Restart("n3"),
    ]
    first, _ = run_settled(ops, N3)
    second, _ = run_settled(ops, N3)
    assert [(v.id, v.status, v.measured) for v in first] == [
        (v.id, v.status, v.measured) for v in second
    ]
    wrong = failing_musts(first) + must_errors(first)
    assert not wrong, [(v.id, v.status, v.evidence) for v in wrong]
