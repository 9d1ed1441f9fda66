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

import hashlib
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gossipcert.harness.drivers.backends import BACKENDS, SIMULATION, unknown_backend
from gossipcert.harness.errors import USER_ERRORS, GossipcertError
from gossipcert.harness.history import History
from gossipcert.harness.judging.index import DEFAULT_CLOCK_SKEW_MS
from gossipcert.harness.judging.verdict import (
    Requirement,
    load_catalogue,
)
from gossipcert.harness.manifest import Manifest, load_manifest
from gossipcert.harness.profiles import DEFAULT_PROFILE, JudgedTiming, judged_timing
from gossipcert.harness.run.pipeline import (
    Progress,
    RunSpec,
    cluster_for,
    default_report_dir,
    execute,
    node_ids,
    publish,
)
from gossipcert.harness.run.replay import (
    ReplayFile,
    defect_core,
    plain_timing,
    save_replay,
)
from gossipcert.harness.run.search import (
    ExampleRun,
    Finding,
    Search,
    SearchOutcome,
)
from gossipcert.harness.workloads.capabilities import operation_sequences
from gossipcert.harness.workloads.operations import Op
from gossipcert.harness.workloads.strategies import Space, with_namespace
from hypothesis.database import DirectoryBasedExampleDatabase

if TYPE_CHECKING:
    from gossipcert.harness.drivers.cluster import Cluster

__all__ = [
    "ClusterRunner",
    "ExploreOptions",
    "ExploreResult",
    "SimulationRunner",
    "explore",
    "space_for",
]

def _quiet(line: str) -> None:
    pass


class ClusterRunner:
    """Examples on one real cluster, reused from example to example.

    Between examples the cluster is healed and must converge again; when it does not (or
    an example broke off), it is stopped and a fresh one started, so no example inherits
    the wreck of another. Each cluster's own history (start-up and the healing between
    examples) is ``clusters/<k>/history.jsonl`` beside its node logs; each example is a
    run of the pipeline (:func:`harness.run.pipeline.execute`) on that cluster.
    """

    def __init__(self, manifest: Manifest, nodes: int, report_dir: Path, *, backend: str,
                 seed: int, judged: JudgedTiming, catalogue: Sequence[Requirement],
                 clock_skew_ms: float = DEFAULT_CLOCK_SKEW_MS,
                 base_port: int | None = None, toxiproxy_url: str | None = None,
                 progress: Callable[[str], None] = _quiet) -> None:
        self.report_dir = report_dir
        self.progress = progress
        # What every example shares; each one adds its operations and its number.
        self.spec = RunSpec(backend=backend, nodes=tuple(node_ids(nodes)), seed=seed,
                            timing=judged.timing, ops=(), scenario="explore",
                            catalogue=tuple(catalogue), manifest=manifest,
                            timing_profile=judged.describe(), clock_skew_ms=clock_skew_ms,
                            base_port=base_port, toxiproxy_url=toxiproxy_url)
        self.cluster: Cluster | None = None
        self.cluster_history: History | None = None
        self.clusters_started = 0
        self.dirty = False

    # ---- the cluster's life ------------------------------------------------------------

    def open(self) -> None:
        """Start the cluster (a launch error here is the implementation's bad input)."""
        self.close()
        self.clusters_started += 1
        spec = replace(self.spec, run_dir=self.report_dir / "clusters" / str(self.clusters_started))
        assert spec.run_dir is not None and spec.manifest is not None
        spec.run_dir.mkdir(parents=True, exist_ok=True)
        self.cluster_history = History(spec.run_dir / "history.jsonl")
        self.cluster_history.append("meta", "run", args=spec.meta())
        cluster = cluster_for(spec, self.cluster_history)
        started = time.monotonic()
        cluster.__enter__()  # stops whatever it started when the start fails
        self.cluster = cluster
        self.dirty = False
        self.progress(f"cluster {self.clusters_started} up: {len(spec.nodes)} nodes of "
                      f"{spec.manifest.name} ({spec.backend}) in "
                      f"{time.monotonic() - started:.1f} s")

    def close(self) -> None:
        cluster, self.cluster = self.cluster, None
        if cluster is not None:
            cluster.close()

    # ---- one example -------------------------------------------------------------------

    def run(self, ops: Sequence[Op], number: int) -> ExampleRun:
        if self.cluster is None or self.dirty:
            try:
                self.open()
            except USER_ERRORS as exc:
                return ExampleRun(number, list(ops), [], [], 0.0,
                                  f"the cluster could not be started again: {exc}")
        cluster = self.cluster
        assert cluster is not None
        ops = with_namespace(ops, f"x{number}-")
        spec = replace(self.spec, ops=tuple(ops), meta_extra={"example": number})
        started = time.monotonic()
        try:
            record = execute(spec, cluster=cluster)
        except USER_ERRORS as exc:
            self.dirty = True
            return ExampleRun(number, ops, [], [], time.monotonic() - started,
                              f"{type(exc).__name__}: {exc}")
        if record.failure is not None:
            self.dirty = True
            return ExampleRun(number, ops, [], record.entries, record.wall_s,
                              f"{type(record.failure).__name__}: {record.failure}")
        self._recover()
        return ExampleRun(number, ops, record.verdicts, record.entries, record.wall_s,
                          record=record)

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
            x = Execution(cluster, list(self.spec.catalogue), self.spec.timing)
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


class SimulationRunner:
    """Examples in the simulator of the reference core (inside ``core``, a seeded defect
    of it when given): a fresh simulated cluster each time, on virtual time."""

    def __init__(self, nodes: int, *, timing: dict[str, Any], policy: str = "lww",
                 core: str = "", catalogue: Sequence[Requirement] | None = None,
                 seed: int = 0) -> None:
        self.node_ids = node_ids(nodes)
        self.timing = plain_timing(timing)
        self.policy = policy
        self.core = core
        self.catalogue = list(catalogue if catalogue is not None else load_catalogue())
        self.seed = seed

    def run(self, ops: Sequence[Op], number: int) -> ExampleRun:
        spec = RunSpec(backend=SIMULATION, nodes=tuple(self.node_ids), seed=self.seed,
                       timing=self.timing, ops=tuple(ops), scenario="explore",
                       catalogue=tuple(self.catalogue), policy=self.policy, core=self.core)
        record = execute(spec)
        return ExampleRun(number, list(ops), record.verdicts, record.entries, record.wall_s,
                          record=record)

    def close(self) -> None:
        pass


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


def space_for(manifest: Manifest, nodes: Sequence[str], judged: JudgedTiming,
              max_steps: int = 12) -> Space:
    """What explore draws from for this implementation: its capabilities and conflict
    policy, and the fault planes its cluster will have (latency needs the link plane or
    the packet plane's delay, loss the packet plane, cuts either)."""
    from gossipcert.chaos.delayline import delay_unavailable_reason
    from gossipcert.chaos.packet import unavailable_reason

    packets = unavailable_reason() is None
    links = manifest.accepts_dial_map
    delays = links or delay_unavailable_reason() is None
    return Space(tuple(nodes), frozenset(manifest.capabilities), dict(judged.timing),
                 policy=manifest.conflict_policy, network=links or packets, latency=delays,
                 loss=packets, max_steps=max_steps)


def explore(opts: ExploreOptions) -> ExploreResult:
    if opts.nodes < 3:
        raise GossipcertError("--nodes must be at least 3 (a minority down is at least one)")
    if opts.backend not in BACKENDS:
        raise GossipcertError(unknown_backend(opts.backend))
    if opts.budget_s <= 0:
        raise GossipcertError("--budget must be more than zero")
    manifest = load_manifest(opts.impl)
    manifest.launch_for(opts.backend)  # a missing launch section is bad input, before any start
    judged = judged_timing(manifest.declared_timing, opts.profile)
    catalogue = load_catalogue()
    seed = opts.seed if opts.seed is not None else random.SystemRandom().randrange(1, 10**6)
    report_dir = opts.report_dir or default_report_dir(manifest.name, f"explore-s{seed}")
    report_dir.mkdir(parents=True, exist_ok=True)
    progress = Progress(opts.progress)
    nodes = node_ids(opts.nodes)
    space = space_for(manifest, nodes, judged, opts.max_steps)
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
    key = hashlib.sha256(json.dumps([str(manifest.path.resolve()), nodes,
                                     manifest.conflict_policy]).encode()).digest()
    context = _FileContext(opts, manifest, judged, nodes, seed)
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
    if reported is not None and reported.record is not None:
        exploration = _exploration(opts, outcome, best, reported, replay_path, summary, seed)
        report = publish(reported.record, report_dir, mode="scenario",
                         run_extra={"wall_time_s": round(outcome.elapsed_s, 2),
                                    "exploration": exploration})
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
