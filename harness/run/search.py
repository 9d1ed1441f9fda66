"""The search behind ``gossipcert explore``: Hypothesis draws sequences of operations, an
:class:`ExampleRunner` runs and judges each one, and a sequence that fails a MUST is
shrunk, each shrink step a run of its own, then run again to confirm it.

A real cluster is not deterministic (see :class:`Search`), so shrinking counts only
failures of the requirements the first violation failed, and the smallest failure is
run again until it fails once more. The same search runs against a real cluster
(:class:`harness.run.explore.ClusterRunner`) or the simulator of the reference core
(:class:`harness.run.explore.SimulationRunner`).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from gossipcert.harness.errors import GossipcertError
from gossipcert.harness.history import Entry
from gossipcert.harness.judging.verdict import Verdict, failing_musts
from gossipcert.harness.run.pipeline import RunRecord
from gossipcert.harness.workloads.operations import Op
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.database import ExampleDatabase
from hypothesis.errors import Flaky

__all__ = [
    "CONFIRM_WALK",
    "MAX_CONSECUTIVE_ERRORS",
    "ExampleRun",
    "ExampleRunner",
    "Finding",
    "Search",
    "SearchOutcome",
    "parse_budget",
]


def _quiet(line: str) -> None:
    """Progress nobody reads."""


MAX_CONSECUTIVE_ERRORS = 3  # examples the harness could not run, in a row, before giving up
CONFIRM_WALK = 3  # failures, smallest first, run again to find one that fails twice


def parse_budget(text: str) -> float:
    """Seconds in ``90``, ``90s``, ``10m``, ``1.5h`` or ``1h30m``."""
    spec = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", spec):
        seconds = float(spec)
    else:
        parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", spec)
        if not parts or "".join(a + u for a, u in parts) != spec:
            raise GossipcertError(f"--budget {text!r}: not a duration (e.g. 90s, 10m, 1h30m)")
        scale = {"h": 3600.0, "m": 60.0, "s": 1.0}
        seconds = sum(float(a) * scale[u] for a, u in parts)
    if seconds <= 0:
        raise GossipcertError(f"--budget {text!r}: must be more than zero")
    return seconds


# ---- running one example -----------------------------------------------------------


@dataclass
class ExampleRun:
    """One sequence run and judged. ``ops`` is what ran (in its namespace); ``error`` is
    set when the harness could not run it to the end (no verdicts then)."""

    number: int
    ops: list[Op]
    verdicts: list[Verdict]
    entries: list[Entry]
    wall_s: float
    error: str | None = None
    record: RunRecord | None = None  # the pipeline's record, for the report


class ExampleRunner(Protocol):
    """Runs one sequence and judges its history."""

    def run(self, ops: Sequence[Op], number: int) -> ExampleRun: ...

    def close(self) -> None: ...


# ---- the search ----------------------------------------------------------------------


class _Violation(Exception):
    """Raised inside an example that fails a MUST: what Hypothesis shrinks."""


class _BudgetSpent(BaseException):
    """Ends the search at once (Hypothesis lets anything but an Exception through)."""


class _Aborted(BaseException):
    """The harness could not run examples any more."""


@dataclass
class Finding:
    """The smallest failing example so far: the sequence as drawn, and its run."""

    drawn: list[Op]
    run: ExampleRun
    failed: list[Verdict]
    found_after_s: float
    reruns: int = 0  # runs of it again after the search, to confirm it
    failed_again: bool = False  # one of those failed a target requirement again


@dataclass
class SearchOutcome:
    examples: int = 0  # sequences run while searching for a first violation
    shrink_steps: int = 0  # sequences run while shrinking one
    shrinks: int = 0  # shrink steps that still failed: each a smaller failing sequence
    confirm_runs: int = 0  # failures run again after the search, to confirm them
    unconfirmed: int = 0  # failures set aside: they did not fail again when run again
    duplicates: int = 0  # sequences drawn again, judged from their first run
    errors: int = 0  # examples the harness could not run to the end
    elapsed_s: float = 0.0
    stop: str = ""  # budget, exhausted, shrunk, aborted
    best: Finding | None = None
    first: Finding | None = None
    last: ExampleRun | None = None
    aborted: str | None = None
    target: list[str] = field(default_factory=list)
    # Per requirement, how many runs judged it (passed or failed): what the search covered.
    exercised: dict[str, int] = field(default_factory=dict)

    @property
    def runs(self) -> int:
        return self.examples + self.shrink_steps + self.confirm_runs


class Search:
    """Hypothesis driven against an :class:`ExampleRunner` within a time budget.

    The first violation fixes the target: later examples (shrink steps) count as failing
    only when they fail one of its requirements, so shrinking cannot wander off to
    another failure. A sequence drawn twice is judged from its first run (shrinking draws
    many that build to the same operations). The budget is checked before each run; when
    it is spent the search stops where it is, keeping the smallest failure.

    A real cluster is not deterministic: a sequence may fail by a timing it meets only now
    and then. Shrinking takes a smaller sequence on one failure (asking for two would
    reject most steps of a failure that shows half the time, and shrink little); then the
    smallest failure is run again, up to ``confirm`` times, until it fails once more. One
    that never does is set aside for the next larger failure (at most ``CONFIRM_WALK``
    of them), so the sequence saved is one seen failing twice whenever one was. The
    simulator is deterministic and needs no confirmation (``confirm=0``). Confirmation
    runs may go past the budget: a few runs of the smallest sequences.
    """

    def __init__(self, runner: ExampleRunner, budget_s: float, *,
                 progress: Callable[[str], None] = _quiet,
                 clock: Callable[[], float] = time.monotonic, confirm: int = 3) -> None:
        self.runner = runner
        self.budget_s = budget_s
        self.confirm = confirm
        self.progress = progress
        self.clock = clock
        self.outcome = SearchOutcome()
        self._seen: dict[str, Finding | None] = {}  # by operations: the failure, if any
        self._started = clock()
        self._errors_in_a_row = 0

    def elapsed(self) -> float:
        return self.clock() - self._started

    def run(self, strategy: st.SearchStrategy[list[Op]], seed: int,
            database: ExampleDatabase | None = None, database_key: bytes | None = None
            ) -> SearchOutcome:
        self._started = self.clock()
        run_settings = settings(
            database=database, deadline=None, max_examples=10**6, derandomize=False,
            suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet,
            phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
            report_multiple_bugs=False, print_blob=False,
        )

        @run_settings
        @given(strategy)
        def example(ops: list[Op]) -> None:
            self._try(ops)

        test = hypothesis_seed(seed)(example)
        if database_key is not None:
            test._hypothesis_internal_database_key = database_key  # type: ignore[attr-defined]
        outcome = self.outcome
        try:
            test()
            outcome.stop = "exhausted"
        except _Violation:
            outcome.stop = "shrunk"
        except _BudgetSpent:
            outcome.stop = "budget"
        except _Aborted as exc:
            outcome.stop = "aborted"
            outcome.aborted = str(exc)
        except Flaky:
            # A real cluster may not fail the same sequence twice; the smallest failure
            # seen is kept all the same.
            outcome.stop = "shrunk" if outcome.best is not None else "exhausted"
        if outcome.best is not None and self.confirm > 0 and outcome.stop != "aborted":
            try:
                self._confirm(outcome.best)
            except _Aborted as exc:
                outcome.aborted = f"while confirming the failure: {exc}"
        outcome.elapsed_s = self.elapsed()
        return outcome

    def _confirm(self, smallest: Finding) -> None:
        """Run the smallest failure again until it fails once more; walk back to larger
        ones when it does not (see the class docstring)."""
        outcome = self.outcome
        taken = [f for f in self._seen.values() if f is not None and f is not smallest]
        for finding in [smallest, *reversed(taken)][:CONFIRM_WALK]:
            size = len(finding.drawn)
            for _ in range(self.confirm):
                run, failed = self._run(finding.drawn, "confirm")
                finding.reruns += 1
                if run is not None and failed:
                    finding.failed_again = True
                    outcome.best = finding
                    self.progress(f"confirmed: the failing sequence of {size} operations "
                                  f"failed {', '.join(v.id for v in failed)} again on rerun "
                                  f"{finding.reruns}")
                    return
            outcome.unconfirmed += 1
            self.progress(f"the failing sequence of {size} operations did not fail again in "
                          f"{finding.reruns} reruns: set aside (its failure depends on a "
                          f"timing it met only once)")
        self.progress("no failure seen failed again: the smallest is kept; a replay may need "
                      "several attempts")
        outcome.best = smallest

    def _try(self, ops: list[Op]) -> None:
        # One raise for every failure: Hypothesis tells failures apart by where they
        # are raised, and shrinks only towards the same one.
        if self._fails(ops):
            raise _Violation(", ".join(self.outcome.target))

    def _fails(self, ops: list[Op]) -> bool:
        """Run ``ops`` (unless they ran before) and say whether they fail the target."""
        outcome = self.outcome
        best = outcome.best
        if best is not None and ops == best.drawn:
            return True  # Hypothesis replays its smallest failure: it failed already
        key = json.dumps([op.to_json() for op in ops], sort_keys=True)
        if key in self._seen:
            outcome.duplicates += 1
            known = self._seen[key]
            if known is not None:
                outcome.best = known  # Hypothesis takes it as its smallest failure now
            return known is not None
        shrinking = best is not None
        run, failed = self._run(ops, "shrink" if shrinking else "example")
        if run is None:
            return False
        size = len(ops)
        if not failed:
            self._seen[key] = None
            if shrinking:
                assert best is not None
                self.progress(f"shrink step {outcome.shrink_steps}: {size} operations pass "
                              f"(smallest failure: {len(best.drawn)}); {self._spent()}")
            else:
                self.progress(f"example {run.number}: {size} operations, {run.wall_s:.1f} s, "
                              f"no violation; {outcome.examples} examples, {self._spent()}")
            return False
        ids = ", ".join(v.id for v in failed)
        finding = Finding(list(ops), run, failed, self.elapsed())
        self._seen[key] = finding
        if shrinking:
            outcome.shrinks += 1
            self.progress(f"shrink step {outcome.shrink_steps}: {size} operations still fail "
                          f"{ids} (shrunk {outcome.shrinks} times); {self._spent()}")
        else:
            outcome.first = finding
            outcome.target = [v.id for v in failed]
            self.progress(f"example {run.number}: {size} operations, VIOLATION of {ids}: "
                          f"{failed[0].evidence}; shrinking; {self._spent()}")
        outcome.best = finding
        return True

    def _spent(self) -> str:
        return f"{self.elapsed():.0f}/{self.budget_s:.0f} s"

    def _run(self, ops: list[Op], purpose: str) -> tuple[ExampleRun | None, list[Verdict]]:
        """One real run of ``ops`` (an ``example``, a ``shrink`` step or a ``confirm``
        run): the run (None when the harness could not finish it) and the target
        requirements it failed."""
        outcome = self.outcome
        if purpose == "confirm":
            outcome.confirm_runs += 1
        elif self.elapsed() >= self.budget_s:
            raise _BudgetSpent
        elif purpose == "shrink":
            outcome.shrink_steps += 1
        else:
            outcome.examples += 1
        number = outcome.runs
        run = self.runner.run(ops, number)
        outcome.last = run
        if run.error is not None:
            outcome.errors += 1
            self._errors_in_a_row += 1
            self.progress(f"run {number}: not run to the end: {run.error}")
            if self._errors_in_a_row >= MAX_CONSECUTIVE_ERRORS:
                raise _Aborted(f"{self._errors_in_a_row} examples in a row could not be run: "
                               f"{run.error}")
            return None, []
        self._errors_in_a_row = 0
        for v in run.verdicts:
            if v.status in ("pass", "fail"):
                outcome.exercised[v.id] = outcome.exercised.get(v.id, 0) + 1
        failed = failing_musts(run.verdicts)
        if outcome.target:
            failed = [v for v in failed if v.id in outcome.target]
        return run, failed
