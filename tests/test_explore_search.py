"""The search explore drives, against runners that need no cluster: it finds a failing
sequence, shrinks it towards the same requirement, keeps within its budget, judges a
sequence drawn twice from its first run, and gives up on a harness that cannot run
examples. Also the command line's checks before anything starts."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from gossipcert.harness.errors import GossipcertError
from gossipcert.harness.judging.verdict import Verdict, failing_musts
from gossipcert.harness.manifest import load_manifest
from gossipcert.harness.run.search import (
    CONFIRM_WALK,
    ExampleRun,
    Search,
    parse_budget,
)
from gossipcert.harness.workloads import operations as o
from gossipcert.harness.workloads.capabilities import operation_sequences
from gossipcert.harness.workloads.faults import Kill
from gossipcert.harness.workloads.kv import Put
from gossipcert.harness.workloads.operations import Op
from gossipcert.harness.workloads.strategies import Space

REFERENCE = load_manifest("reference")
SPACE = Space(("n1", "n2", "n3", "n4", "n5"), frozenset(REFERENCE.capabilities),
              dict(REFERENCE.timing))


def verdict(rid: str, status: str, level: str = "MUST") -> Verdict:
    return Verdict(rid, level, rid, status, None, None, "count", f"{rid} {status}")


def puts(ops: Sequence[Op]) -> list[Put]:
    return [p for op in ops for p in (op.ops if isinstance(op, o.Concurrent) else (op,))
            if isinstance(p, Put)]


class FakeRunner:
    """Fails KV-LWW when a sequence writes one key twice from one node, and FD-DETECT
    (a second, unrelated failure) when it kills a node."""

    def __init__(self, error_from: int | None = None, kills_fail: bool = True) -> None:
        self.runs: list[list[Op]] = []
        self.error_from = error_from
        self.kills_fail = kills_fail

    def run(self, ops: Sequence[Op], number: int) -> ExampleRun:
        self.runs.append(list(ops))
        if self.error_from is not None and number >= self.error_from:
            return ExampleRun(number, list(ops), [], [], 0.0, "LaunchError: node n2 gone")
        verdicts = [verdict("KV-LWW", "pass"), verdict("FD-DETECT", "untested"),
                    verdict("BCAST-LATENCY", "fail", "SHOULD"), verdict("KV-MV", "error")]
        written = [(p.node, p.key) for p in puts(ops)]
        if len(written) != len(set(written)):
            verdicts[0] = verdict("KV-LWW", "fail")
        if self.kills_fail and any(isinstance(op, Kill) for op in ops):
            verdicts[1] = verdict("FD-DETECT", "fail")
        return ExampleRun(number, list(ops), verdicts, [], 0.01)

    def close(self) -> None:
        pass


def test_violations_are_failed_musts_only() -> None:
    found = failing_musts([verdict("A", "fail"), verdict("B", "error"), verdict("C", "untested"),
                        verdict("D", "fail", "SHOULD"), verdict("E", "pass")])
    assert [v.id for v in found] == ["A"]


def test_a_violation_is_found_and_shrunk_to_the_smallest_sequence() -> None:
    runner = FakeRunner(kills_fail=False)
    lines: list[str] = []
    outcome = Search(runner, 120.0, progress=lines.append).run(operation_sequences(SPACE), 3)
    assert outcome.stop == "shrunk"
    best = outcome.best
    assert best is not None and outcome.first is not None
    assert [v.id for v in best.failed] == ["KV-LWW"]
    # Shrunk to the two writes that make the failure, between the fixed start and end.
    assert [op.kind for op in best.drawn] == ["await-members", "put", "put", "await-convergence"]
    assert outcome.first.drawn != best.drawn
    assert outcome.shrink_steps > 0 and outcome.shrinks > 0
    assert outcome.runs == len(runner.runs)
    assert any("VIOLATION" in line for line in lines)
    assert any(line.startswith("shrink step") for line in lines)


def test_shrinking_keeps_to_the_first_failure() -> None:
    """Once KV-LWW failed, a shrink step failing only FD-DETECT does not count."""
    runner = FakeRunner()
    search = Search(runner, 120.0)
    search.outcome.target = ["KV-LWW"]
    assert search._fails([o.AwaitMembers(), Kill("n2"), o.AwaitConvergence()]) is False
    assert search._fails([o.AwaitMembers(), Put("n1", "k0", "a"), Put("n1", "k0", "b"),
                          o.AwaitConvergence()]) is True


def test_a_sequence_drawn_twice_runs_once() -> None:
    runner = FakeRunner()
    search = Search(runner, 120.0)
    ops = [o.AwaitMembers(), o.Wait(200), o.AwaitConvergence()]
    assert search._fails(list(ops)) is False
    assert search._fails(list(ops)) is False
    assert len(runner.runs) == 1 and search.outcome.duplicates == 1


def test_the_budget_stops_the_search() -> None:
    ticks = iter(range(0, 10**6, 10))
    runner = FakeRunner()
    space = Space(SPACE.nodes, frozenset({"membership"}), SPACE.timing, faults=False)
    outcome = Search(runner, 50.0, clock=lambda: float(next(ticks))).run(
        operation_sequences(space), 1)
    assert outcome.stop == "budget" and outcome.best is None
    assert 1 <= outcome.examples <= 5


def test_a_harness_that_cannot_run_examples_stops_the_search() -> None:
    runner = FakeRunner(error_from=1)
    outcome = Search(runner, 120.0).run(operation_sequences(SPACE), 1)
    assert outcome.stop == "aborted" and outcome.errors == 3
    assert outcome.aborted is not None and "node n2 gone" in outcome.aborted


@pytest.mark.parametrize(("text", "seconds"), [("90", 90.0), ("90s", 90.0), ("10m", 600.0),
                                               ("1h30m", 5400.0), ("1.5m", 90.0)])
def test_budgets(text: str, seconds: float) -> None:
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["", "ten", "5x", "0", "0s", "-3", "1m2"])
def test_bad_budgets(text: str) -> None:
    with pytest.raises(GossipcertError, match="--budget"):
        parse_budget(text)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gossipcert.harness", *args],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("args", "fragment"), [
    (["--budget", "soon"], "--budget 'soon'"),
    (["--nodes", "2"], "--nodes must be at least 3"),
    (["--impl", "no/such/manifest.yaml"], "no such file"),
])
def test_explore_bad_input_exits_2_before_any_start(tmp_path: Path, args: list[str],
                                                     fragment: str) -> None:
    result = run_cli("explore", "--report-dir", str(tmp_path / "run"), *args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("gossipcert: error:")]
    assert len(errors) == 1 and fragment in errors[0], result.stderr


class FlakyRunner(FakeRunner):
    """Fails like FakeRunner, but only on the first run of a sequence ``flaky`` picks (by
    default every one): a failure that needed a timing met once."""

    def __init__(self, flaky: Callable[[Sequence[Op]], bool] = lambda ops: True) -> None:
        super().__init__(kills_fail=False)
        self.flaky = flaky
        self.seen: set[str] = set()

    def run(self, ops: Sequence[Op], number: int) -> ExampleRun:
        run = super().run(ops, number)
        key = repr(ops)
        if key in self.seen and self.flaky(ops):
            run.verdicts = [verdict(v.id, "pass") if v.status == "fail" else v
                            for v in run.verdicts]
        self.seen.add(key)
        return run


def test_a_failure_that_never_fails_again_is_kept_but_said_to_be_unconfirmed() -> None:
    lines: list[str] = []
    outcome = Search(FlakyRunner(), 120.0, progress=lines.append).run(
        operation_sequences(SPACE), 3)
    assert outcome.first is not None and outcome.best is not None
    assert outcome.shrinks > 0  # one failure is enough for a shrink step
    assert not outcome.best.failed_again and outcome.best.reruns == 3
    assert outcome.unconfirmed == min(CONFIRM_WALK, outcome.shrinks + 1)
    assert outcome.confirm_runs == 3 * outcome.unconfirmed
    assert any("no failure seen failed again" in line for line in lines), lines
    # Without confirmation (a deterministic runner) nothing is run again.
    outcome = Search(FlakyRunner(), 120.0, confirm=0).run(operation_sequences(SPACE), 3)
    assert outcome.shrinks > 0 and outcome.confirm_runs == 0


def test_the_failure_kept_is_the_smallest_that_fails_again() -> None:
    outcome = Search(FakeRunner(kills_fail=False), 120.0).run(operation_sequences(SPACE), 3)
    assert outcome.best is not None and outcome.best.failed_again
    assert outcome.best.reruns == 1 and outcome.confirm_runs == 1 and outcome.unconfirmed == 0
    # Sequences of two writes (the smallest failures) fail only once; larger ones always.
    small_is_flaky = FlakyRunner(flaky=lambda ops: len(puts(ops)) <= 2)
    outcome = Search(small_is_flaky, 120.0).run(operation_sequences(SPACE), 3)
    assert outcome.best is not None and outcome.best.failed_again, outcome
    assert len(puts(outcome.best.drawn)) > 2 and outcome.unconfirmed >= 1
