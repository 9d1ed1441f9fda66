"""``gossipcert explore``: Hypothesis against a real cluster of any implementation.

Hypothesis draws sequences of operations (:mod:`harness.workloads.strategies`) and each one runs on
one cluster, started once and reused: between examples the cluster is healed (links
restored, paused nodes resumed, killed nodes started) and left to converge, and the next
sequence writes in a fresh key namespace, so an example costs seconds, not a cluster
start. Each example has a history of its own, opening with a meta entry as certify's
does and with every node's start as carried over from before (read from ``GET /v1/node``
then), and is judged alone by the checkers: what it did not exercise is simply untested.

A violation is a MUST requirement that fails (``error`` and ``untested`` are not). Then
Hypothesis shrinks the sequence against the same real cluster, each shrink step a real
run that counts only when it fails one of the requirements the first violation failed;
the smallest failure is then run again until it fails once more (a real cluster is not
deterministic, see :class:`Search`). The smallest failing sequence is saved as a replay
file (``replay.json``, format ``gossipcert-ops/1``, see :mod:`harness.run.replay`) and
reported the way certify reports a run, with the sequence added. Without a violation
within the budget, the report is the last example's, and the outcome is "no violation
found in N examples": not a certificate.

The search itself (:class:`Search`) takes any :class:`ExampleRunner`, so the same search
runs in the simulator of the reference core (:class:`SimulationRunner`) for comparison.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from gossipcert.harness import __version__
from gossipcert.harness.errors import USER_ERRORS, GossipcertError
from gossipcert.harness.history import Entry, History
from gossipcert.harness.judging import run_checks
from gossipcert.harness.judging.index import DEFAULT_CLOCK_SKEW_MS
from gossipcert.harness.judging.verdict import (
    Requirement,
    Verdict,
    failing_musts,
    load_catalogue,
)
from gossipcert.harness.manifest import Manifest, load_manifest
from gossipcert.harness.profiles import DEFAULT_PROFILE, JudgedTiming, judged_timing
from gossipcert.harness.run.replay import (
    REPLAY_FORMAT,
    ReplayFile,
    defect_core,
    plain_timing,
    save_replay,
)
from gossipcert.harness.workloads.capabilities import operation_sequences
from gossipcert.harness.workloads.operations import Op
from gossipcert.harness.workloads.strategies import Space, with_namespace
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase
from hypothesis.errors import Flaky

if TYPE_CHECKING:
    from gossipcert.harness.drivers.cluster import Cluster

__all__ = [
    "ClusterRunner",
    "ExampleRun",
    "ExampleRunner",
    "ExploreOptions",
    "ExploreResult",
    "Finding",
    "Search",
    "SearchOutcome",
    "SimulationRunner",
    "explore",
    "parse_budget",
]

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


class ExampleRunner(Protocol):
    """Runs one sequence and judges its history."""

    def run(self, ops: Sequence[Op], number: int) -> ExampleRun: ...

    def close(self) -> None: ...


def _quiet(line: str) -> None:
    pass


class ClusterRunner:
    """Examples on one real cluster, reused from example to example.

    Between examples the cluster is healed and must converge again; when it does not (or
    an example broke off), it is stopped and a fresh one started, so no example inherits
    the wreck of another. Each cluster's own history (start-up and the healing between
    examples) is ``clusters/<k>/history.jsonl`` beside its node logs.
    """

    def __init__(self, manifest: Manifest, nodes: int, report_dir: Path, *, backend: str,
                 seed: int, judged: JudgedTiming, catalogue: Sequence[Requirement],
                 clock_skew_ms: float = DEFAULT_CLOCK_SKEW_MS,
                 base_port: int | None = None, toxiproxy_url: str | None = None,
                 progress: Callable[[str], None] = _quiet) -> None:
        self.manifest = manifest
        self.node_ids = [f"n{i + 1}" for i in range(nodes)]
        self.report_dir = report_dir
        self.backend = backend
        self.seed = seed
        self.judged = judged
        self.catalogue = list(catalogue)
        self.clock_skew_ms = clock_skew_ms
        self.base_port = base_port
        self.toxiproxy_url = toxiproxy_url
        self.progress = progress
        self.cluster: Cluster | None = None
        self.cluster_history: History | None = None
        self.clusters_started = 0
        self.dirty = False

    # ---- the cluster's life ------------------------------------------------------------

    def open(self) -> None:
        """Start the cluster (a launch error here is the implementation's bad input)."""
        from gossipcert.harness.drivers.cluster import Cluster

        self.close()
        self.clusters_started += 1
        run_dir = self.report_dir / "clusters" / str(self.clusters_started)
        run_dir.mkdir(parents=True, exist_ok=True)
        self.cluster_history = History(run_dir / "history.jsonl")
        self.cluster_history.append("meta", "run", args=self._meta(None))
        cluster = Cluster(self.manifest, len(self.node_ids), run_dir, backend=self.backend,
                          seed=self.seed, base_port=self.base_port,
                          toxiproxy_url=self.toxiproxy_url, history=self.cluster_history,
                          progress=_quiet)
        started = time.monotonic()
        cluster.__enter__()  # stops whatever it started when the start fails
        self.cluster = cluster
        self.dirty = False
        self.progress(f"cluster {self.clusters_started} up: {len(self.node_ids)} nodes of "
                      f"{self.manifest.name} ({self.backend}) in "
                      f"{time.monotonic() - started:.1f} s")

    def close(self) -> None:
        cluster, self.cluster = self.cluster, None
        if cluster is not None:
            cluster.close()

    def _meta(self, number: int | None) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "implementation": self.manifest.name,
            "seed": self.seed,
            "nodes": self.node_ids,
            "timing": self.judged.timing,
            "timing_profile": self.judged.describe(),
            "clock_skew_ms": self.clock_skew_ms,
            "conflict_policy": self.manifest.conflict_policy,
            "conflict_policies": [self.manifest.conflict_policy],
            "capabilities": self.manifest.capabilities,
            "backend": self.backend,
            "scenario": "explore",
        }
        if number is not None:
            meta["example"] = number
        return meta

    # ---- one example -------------------------------------------------------------------

    def run(self, ops: Sequence[Op], number: int) -> ExampleRun:
        from gossipcert.harness.drivers.hostlag import LagMonitor
        from gossipcert.harness.workloads.interpreter import Execution

        if self.cluster is None or self.dirty:
            try:
                self.open()
            except USER_ERRORS as exc:
                return ExampleRun(number, list(ops), [], [], 0.0,
                                  f"the cluster could not be started again: {exc}")
        cluster = self.cluster
        assert cluster is not None
        ops = with_namespace(ops, f"x{number}-")
        history = History()
        history.append("meta", "run", args=self._meta(number))
        started = time.monotonic()
        error: str | None = None
        try:
            _use_history(cluster, history)
            _carry_over(cluster, history)
            lag = LagMonitor(history, self.judged.timing["probe_timeout_ms"])
            with lag:
                Execution(cluster, self.catalogue, self.judged.timing).run(ops)
        except USER_ERRORS as exc:
            error = f"{type(exc).__name__}: {exc}"
            self.dirty = True
        finally:
            assert self.cluster_history is not None
            _use_history(cluster, self.cluster_history)
        wall_s = time.monotonic() - started
        entries = history.entries()
        if error is not None:
            return ExampleRun(number, ops, [], entries, wall_s, error)
        verdicts = run_checks(entries, self.catalogue)
        self._recover()
        return ExampleRun(number, ops, verdicts, entries, wall_s)

    def _recover(self) -> None:
        """Heal whatever the example left and wait until the cluster agrees again; a
        cluster that does not is replaced before the next example."""
        from gossipcert.harness.workloads.interpreter import Execution

        cluster = self.cluster
        assert cluster is not None
        try:
            for node_id in sorted(cluster.paused):
                cluster.resume(node_id)
            cluster.heal()
            for node_id in sorted(cluster.killed | cluster.departed):
                cluster.restart(node_id)
            x = Execution(cluster, self.catalogue, self.judged.timing)
            live = cluster.live_nodes()
            settled = x.all_see(live) and ("kv" not in x.capabilities or x.digests_equal())
            if not settled and x.converge("between examples") is None:
                self.progress("the cluster did not converge after the example: starting a "
                              "fresh one for the next")
                self.dirty = True
        except USER_ERRORS as exc:
            self.progress(f"healing after the example failed ({exc}): starting a fresh "
                          "cluster for the next")
            self.dirty = True


def _use_history(cluster: Cluster, history: History) -> None:
    """Point the cluster's recording at ``history``, events polled so far flushed into
    the one it had, so no entry straddles two examples' histories."""
    with contextlib.suppress(Exception):
        cluster.poll_events()
    # The event poller appends under this lock: swapped under it, no poll is cut in two.
    lock = getattr(cluster, "_event_lock", None)
    with lock if lock is not None else contextlib.nullcontext():
        cluster.history = history


def _carry_over(cluster: Cluster, history: History) -> None:
    """Each node's start, as this example finds it: already running since an earlier
    example, ready as ``GET /v1/node`` says now. Lives begin here for the checkers."""
    from gossipcert.harness.errors import LaunchError

    for node_id in cluster.live_nodes():
        call = history.new_call()
        args = {"gossip": cluster.addresses[node_id].gossip_addr, "carried_over": True}
        history.append("invoke", "start", node=node_id, call=call, args=args)
        reply = cluster.client(node_id).node()
        body = reply.body if isinstance(reply.body, dict) else {}
        if not (reply.ok and body.get("ready")):
            raise LaunchError(f"node {node_id} is not ready at the start of an example "
                              f"(status {reply.status})")
        history.append("ok", "start", node=node_id, call=call, args=args, result=body)


class SimulationRunner:
    """Examples in the simulator of the reference core (inside ``core``, a seeded defect
    of it when given): a fresh simulated cluster each time, on virtual time."""

    def __init__(self, nodes: int, *, timing: dict[str, Any], policy: str = "lww",
                 core: str = "", catalogue: Sequence[Requirement] | None = None,
                 seed: int = 0) -> None:
        self.node_ids = [f"n{i + 1}" for i in range(nodes)]
        self.timing = plain_timing(timing)
        self.policy = policy
        self.core = core
        self.catalogue = list(catalogue if catalogue is not None else load_catalogue())
        self.seed = seed

    def run(self, ops: Sequence[Op], number: int) -> ExampleRun:
        from gossipcert.harness.drivers.simulated import simulate

        started = time.monotonic()
        verdicts, entries = simulate(list(ops), self.node_ids, timing=self.timing,
                                     policy=self.policy, core=self.core, seed=self.seed,
                                     catalogue=self.catalogue, scenario="explore")
        return ExampleRun(number, list(ops), verdicts, entries, time.monotonic() - started)

    def close(self) -> None:
        pass


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


# ---- gossipcert explore --------------------------------------------------------------


@dataclass
class ExploreOptions:
    impl: str = "reference"
    backend: str = "process"
    budget_s: float = 600.0
    nodes: int = 5
    seed: int | None = None
    report_dir: Path | None = None
    profile: str = DEFAULT_PROFILE
    clock_skew_ms: float = DEFAULT_CLOCK_SKEW_MS
    max_steps: int = 12
    base_port: int | None = None
    toxiproxy_url: str | None = None
    progress: Callable[[str], None] = field(default=_quiet)


@dataclass
class ExploreResult:
    exit_code: int
    report_dir: Path
    outcome: SearchOutcome
    report: dict[str, Any] | None
    replay_path: Path | None
    summary: str


def default_report_dir(manifest: Manifest, seed: int) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path("gossipcert-runs") / f"{stamp}-{manifest.name}-explore-s{seed}"


class _Progress:
    def __init__(self, sink: Callable[[str], None]) -> None:
        self.sink = sink
        self.t0 = time.monotonic()

    def __call__(self, line: str) -> None:
        self.sink(f"[{time.monotonic() - self.t0:6.1f}s] {line}")


def space_for(manifest: Manifest, nodes: Sequence[str], judged: JudgedTiming,
              max_steps: int = 12) -> Space:
    """What explore draws from for this implementation: its capabilities and conflict
    policy, and the fault planes its cluster will have (latency needs the link plane,
    loss the packet plane, cuts either)."""
    from gossipcert.chaos.packet import unavailable_reason

    packets = unavailable_reason() is None
    links = manifest.accepts_dial_map
    return Space(tuple(nodes), frozenset(manifest.capabilities), dict(judged.timing),
                 policy=manifest.conflict_policy, network=links or packets, latency=links,
                 loss=packets, max_steps=max_steps)


def explore(opts: ExploreOptions) -> ExploreResult:
    if opts.nodes < 3:
        raise GossipcertError("--nodes must be at least 3 (a minority down is at least one)")
    if opts.backend not in ("process", "docker", "swarm"):
        raise GossipcertError(f"unknown backend {opts.backend!r} (process, docker or swarm)")
    if opts.budget_s <= 0:
        raise GossipcertError("--budget must be more than zero")
    manifest = load_manifest(opts.impl)
    manifest.launch_for(opts.backend)  # a missing launch section is bad input, before any start
    judged = judged_timing(manifest.declared_timing, opts.profile)
    catalogue = load_catalogue()
    seed = opts.seed if opts.seed is not None else random.SystemRandom().randrange(1, 10**6)
    report_dir = opts.report_dir or default_report_dir(manifest, seed)
    report_dir.mkdir(parents=True, exist_ok=True)
    progress = _Progress(opts.progress)
    node_ids = [f"n{i + 1}" for i in range(opts.nodes)]
    space = space_for(manifest, node_ids, judged, opts.max_steps)
    planes = [name for name, on in (("cuts", space.network), ("latency", space.latency),
                                    ("loss", space.loss)) if on]
    progress(f"exploring {manifest.name} on {opts.nodes} {opts.backend} nodes for "
             f"{opts.budget_s:.0f} s, seed {seed}, {manifest.conflict_policy}; faults: "
             f"process, {', '.join(planes) or 'no network faults'}; {judged.note()}; "
             f"report dir {report_dir}")
    runner = ClusterRunner(manifest, opts.nodes, report_dir, backend=opts.backend, seed=seed,
                           judged=judged, catalogue=catalogue, clock_skew_ms=opts.clock_skew_ms,
                           base_port=opts.base_port, toxiproxy_url=opts.toxiproxy_url,
                           progress=progress)
    search = Search(runner, opts.budget_s, progress=progress)
    database = DirectoryBasedExampleDatabase(str(report_dir / ".hypothesis"))
    key = hashlib.sha256(json.dumps([str(manifest.path.resolve()), node_ids,
                                     manifest.conflict_policy]).encode()).digest()
    context = _FileContext(opts, manifest, judged, node_ids, seed)
    try:
        runner.open()
        outcome = search.run(operation_sequences(space), seed, database, key)
    except KeyboardInterrupt:
        if search.outcome.best is not None:
            path = _save_finding(report_dir, context, search.outcome.best)
            progress(f"interrupted; the smallest failing sequence so far is in {path}")
        raise
    finally:
        runner.close()
    return _conclude(opts, manifest, judged, catalogue, seed, report_dir, outcome, context,
                     progress)


@dataclass
class _FileContext:
    opts: ExploreOptions
    manifest: Manifest
    judged: JudgedTiming
    node_ids: list[str]
    seed: int


def _save_finding(report_dir: Path, context: _FileContext, finding: Finding) -> Path:
    manifest = context.manifest
    failure = {
        "requirements": [v.id for v in finding.failed],
        "evidence": "; ".join(f"{v.id}: {v.evidence}" for v in finding.failed),
        "verdicts": [v.to_dict() for v in finding.failed],
    }
    replay = ReplayFile(
        nodes=list(context.node_ids), ops=list(finding.run.ops),
        implementation=context.opts.impl, name=manifest.name,
        manifest=str(manifest.path.resolve()), backend=context.opts.backend,
        timing=dict(context.judged.timing), timing_profile=context.judged.profile,
        conflict_policy=manifest.conflict_policy, core=defect_core(manifest),
        seed=context.seed, example=finding.run.number, failure=failure,
    )
    path = report_dir / "replay.json"
    save_replay(path, replay)
    return path


def _conclude(opts: ExploreOptions, manifest: Manifest, judged: JudgedTiming,
              catalogue: Sequence[Requirement], seed: int, report_dir: Path,
              outcome: SearchOutcome, context: _FileContext,
              progress: Callable[[str], None]) -> ExploreResult:
    from gossipcert.harness.run.report import build_report
    from gossipcert.harness.run.reporting import write_all
    from gossipcert.harness.run.suite import certificate

    best = outcome.best
    replay_path = _save_finding(report_dir, context, best) if best is not None else None
    runs = f"{outcome.examples} examples"
    if outcome.shrink_steps:
        runs += f" and {outcome.shrink_steps} shrink steps"
    if best is not None:
        first = outcome.first or best
        ids = ", ".join(v.id for v in best.failed)
        summary = (f"violation found: {ids} in example {first.run.number} after "
                   f"{first.found_after_s:.0f} s ({len(first.drawn)} operations), shrunk "
                   f"{outcome.shrinks} times to {len(best.drawn)} operations "
                   f"({runs}, {outcome.elapsed_s:.0f} s)")
        if outcome.stop == "budget":
            summary += "; the budget ran out while shrinking: smaller may exist"
        if best.failed_again:
            summary += f"; it failed again on rerun {best.reruns}"
        elif best.reruns:
            summary += (f"; it did not fail again in {best.reruns} reruns (its failure "
                        f"depends on timing: a replay tries several fresh clusters)")
    else:
        summary = (f"no violation found in {runs} ({outcome.elapsed_s:.0f} s"
                   + (f", {outcome.errors} not run to the end" if outcome.errors else "")
                   + "): this is not a certificate")
    if outcome.aborted:
        summary += f"; stopped early: {outcome.aborted}"
    progress(summary)
    reported = best.run if best is not None else outcome.last
    report: dict[str, Any] | None = None
    if reported is not None and reported.verdicts:
        entries = reported.entries
        (report_dir / "history.jsonl").write_text(
            "".join(e.to_json() + "\n" for e in entries), encoding="utf-8")
        exploration = _exploration(opts, outcome, best, reported, replay_path, summary, seed)
        cert = certificate(catalogue=catalogue, verdicts=reported.verdicts,
                           capabilities=manifest.capabilities,
                           policies=[manifest.conflict_policy],
                           timing_profile=judged.describe(), scenarios=["explore"],
                           mode="scenario")
        run_info = {
            "nodes": context.node_ids,
            "backend": opts.backend,
            "timing": judged.timing,
            "conflict_policy": manifest.conflict_policy,
            "wall_time_s": round(outcome.elapsed_s, 2),
            "gossipcert_version": __version__,
            "history": "history.jsonl",
            "manifest": str(manifest.path),
            "scenario": "explore",
            "exploration": exploration,
        }
        faults = [e for e in entries if e.type == "fault"]
        report = build_report(implementation=manifest.name, seed=seed,
                              verdicts=reported.verdicts, faults=faults, run=run_info,
                              certificate=cert)
        write_all(report_dir, report, entries)
        _append_markdown(report_dir / "report.md", exploration)
    elif outcome.aborted and best is None:
        raise GossipcertError(f"explore stopped: {outcome.aborted}")
    code = 1 if best is not None else 0
    return ExploreResult(code, report_dir, outcome, report, replay_path, summary)


def _exploration(opts: ExploreOptions, outcome: SearchOutcome, best: Finding | None,
                 reported: ExampleRun, replay_path: Path | None, summary: str,
                 seed: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "outcome": "violation" if best is not None else "no violation found",
        "summary": summary,
        "seed": seed,
        "budget_s": opts.budget_s,
        "elapsed_s": round(outcome.elapsed_s, 2),
        "examples": outcome.examples,
        "shrink_steps": outcome.shrink_steps,
        "shrinks": outcome.shrinks,
        "confirm_runs": outcome.confirm_runs,
        "unconfirmed": outcome.unconfirmed,
        "duplicates": outcome.duplicates,
        "errors": outcome.errors,
        "stopped_by": outcome.stop,
        "reported_example": reported.number,
        "exercised": dict(sorted(outcome.exercised.items())),
    }
    if best is not None:
        first = outcome.first or best
        out.update({
            "failing_requirements": [v.id for v in best.failed],
            "first_found_after_s": round(first.found_after_s, 2),
            "first_sequence_length": len(first.drawn),
            "failed_again": best.failed_again,
            "reruns": best.reruns,
            "replay_file": replay_path.name if replay_path is not None else None,
            "minimal_sequence": [op.to_json() for op in best.run.ops],
        })
    return out


def _confirmation(exploration: dict[str, Any]) -> str:
    runs, aside = exploration["confirm_runs"], exploration["unconfirmed"]
    if not runs:
        return ""
    return (f"{runs} {'run' if runs == 1 else 'runs'} again to confirm the failure kept "
            f"({aside} {'failure' if aside == 1 else 'failures'} set aside: "
            f"{'it' if aside == 1 else 'they'} did not fail again), ")


def _append_markdown(path: Path, exploration: dict[str, Any]) -> None:
    if not path.is_file():
        return
    lines = ["", "## Exploration", "", str(exploration["summary"]), "",
             f"- seed {exploration['seed']}, budget {exploration['budget_s']:.0f} s, "
             f"{exploration['elapsed_s']:.0f} s spent",
             f"- {exploration['examples']} examples, {exploration['shrink_steps']} shrink "
             f"steps ({exploration['shrinks']} smaller failures), "
             + _confirmation(exploration)
             + f"{exploration['duplicates']} repeated sequences judged from their first run",
             f"- this report is the history of run {exploration['reported_example']}"
             + (" (the smallest failure)" if "minimal_sequence" in exploration else ""),
             "- requirements judged (runs that passed or failed them): "
             + (", ".join(f"{k} {n}" for k, n in exploration["exercised"].items())
                or "none")]
    if "minimal_sequence" in exploration:
        lines += ["", f"Minimal failing sequence ({len(exploration['minimal_sequence'])} "
                      f"operations; replay with `gossipcert replay "
                      f"{exploration['replay_file']}`):", "", "```json"]
        lines += [json.dumps(op, separators=(", ", ": ")) for op in
                  exploration["minimal_sequence"]]
        lines += ["```"]
    with path.open("a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def print_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


__all__ += ["REPLAY_FORMAT", "default_report_dir", "print_progress", "space_for"]
