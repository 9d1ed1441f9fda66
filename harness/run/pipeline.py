"""One run, from its description to its record: the pipeline every command goes through.

A run is one value, :class:`RunSpec`: the implementation's manifest (with the run's
options applied), the timing its bounds derive from, the nodes, the seed, the backend,
the catalogue and the operations. :func:`execute` runs it and returns one
:class:`RunRecord`; it owns every step in between, in this order:

1. the history, opened with the run's meta entry (what every verdict derives from);
2. the cluster: a fresh one on the backend, the simulator's for ``simulation``, or one
   handed in already running (explore reuses one cluster across its examples);
3. the host monitors (scheduling lag, CPU saturation) around the operations;
4. the operation interpreter, and what a failure of the harness's own parts means
   (:func:`harness_failure`);
5. the index and the verdicts (:func:`judge`, the same for a history read back from
   disk).

:func:`publish` turns a record into its report directory: the certificate, the run
info and every report writer. ``certify`` loops over a suite's scenarios, ``explore``
over search examples, ``replay`` over attempts, the simulator's callers over sequences;
none of them repeats a step of the pipeline.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gossipcert.chaos.errors import ChaosError
from gossipcert.chaos.toxiproxy_client import ToxiproxyError
from gossipcert.harness.drivers.backends import SIMULATION
from gossipcert.harness.drivers.cluster import Cluster
from gossipcert.harness.drivers.hostlag import LagMonitor
from gossipcert.harness.drivers.hostload import HostLoadMonitor
from gossipcert.harness.drivers.simulated import (
    REFERENCE_CAPABILITIES,
    SimulatedCluster,
    core_context,
)
from gossipcert.harness.errors import USER_ERRORS, HarnessError, LaunchError, describe
from gossipcert.harness.history import Entry, History
from gossipcert.harness.judging.index import DEFAULT_CLOCK_SKEW_MS, HistoryIndex
from gossipcert.harness.judging.verdict import Requirement, Verdict, load_catalogue
from gossipcert.harness.manifest import MAELSTROM_TEMPLATE, Manifest, load_manifest
from gossipcert.harness.run.progress import step_listener
from gossipcert.harness.run.report import (
    build_report,
    history_provenance,
    host_description,
    manifest_provenance,
)
from gossipcert.harness.run.reporting import write_all
from gossipcert.harness.run.suite import certificate, merge_verdicts, run_summary
from gossipcert.harness.workloads.capabilities import run_checks
from gossipcert.harness.workloads.interpreter import Execution, StepStatus
from gossipcert.harness.workloads.operations import Op
from gossipcert.specs import gossipcert_version

__all__ = [
    "Progress",
    "PublishedRun",
    "default_report_dir",
    "print_progress",
    "RunRecord",
    "RunSpec",
    "cluster_for",
    "cut_short",
    "execute",
    "harness_failure",
    "judge",
    "manifest_info",
    "node_ids",
    "publish",
    "recorded_failure",
    "run_meta",
    "simulate",
    "skipped_run",
    "write_reports",
    "write_suite_report",
]



def _quiet(line: str) -> None:
    """Progress nobody reads."""


def print_progress(line: str) -> None:
    """Progress for a person: one line on stderr as it happens."""
    print(line, file=sys.stderr, flush=True)


class Progress:
    """A progress sink whose lines carry the seconds since the command began; a step
    status goes to the sink's own ``step`` (a :class:`Console`), if it has one."""

    def __init__(self, sink: Callable[[str], None]) -> None:
        self.sink = sink
        self.t0 = time.monotonic()

    def __call__(self, line: str) -> None:
        self.sink(f"[{time.monotonic() - self.t0:6.1f}s] {line}")

    def step(self, scenario: str, status: StepStatus | None) -> None:
        on_step = getattr(self.sink, "step", None)
        if on_step is not None:
            on_step(scenario, status)


def default_report_dir(implementation: str, kind: str) -> Path:
    """Where a run's reports go when no directory is named: ``gossipcert-runs/`` under
    the working directory, one folder per run, named by time, implementation and kind."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path("gossipcert-runs") / f"{stamp}-{implementation}-{kind}"


def node_ids(n: int) -> list[str]:
    """The names a cluster of ``n`` nodes gives its nodes."""
    return [f"n{i + 1}" for i in range(n)]


@dataclass(frozen=True)
class RunSpec:
    """Everything one run is: what runs, where, what it does and how it is judged.

    ``manifest`` is None only for the simulator, whose implementation is the reference
    core (``core`` names a seeded defect it runs inside, see
    :func:`harness.drivers.simulated.core_context`). ``timing`` is what every bound
    derives from; ``timing_profile`` how it came from the declaration
    (:meth:`harness.profiles.JudgedTiming.describe`). ``run_dir`` holds the history and
    the nodes' logs; without one the history stays in memory (an explore example).
    """

    backend: str
    nodes: tuple[str, ...]
    seed: int
    timing: Mapping[str, Any]
    ops: tuple[Op, ...]
    scenario: str
    catalogue: tuple[Requirement, ...]
    manifest: Manifest | None = None
    timing_profile: Mapping[str, Any] | None = None
    policies: tuple[str, ...] = ()  # what the certification claims; default the run's own
    policy: str = "lww"  # the simulator's conflict policy (a manifest carries its own)
    run_dir: Path | None = None
    clock_skew_ms: float = DEFAULT_CLOCK_SKEW_MS
    base_port: int | None = None
    toxiproxy_url: str | None = None
    core: str = ""
    gossip_key: str | None = None
    meta_extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def conflict_policy(self) -> str:
        return self.manifest.conflict_policy if self.manifest is not None else self.policy

    @property
    def implementation(self) -> str:
        if self.manifest is not None:
            return self.manifest.name
        return "simulated reference core" + (f" ({self.core})" if self.core else "")

    @property
    def capabilities(self) -> list[str]:
        if self.manifest is not None:
            return list(self.manifest.capabilities)
        return list(REFERENCE_CAPABILITIES)

    def meta(self) -> dict[str, Any]:
        """The history's opening entry: what the checkers and the reports read of the
        run, so a history judged again later needs nothing else."""
        meta: dict[str, Any] = {
            "implementation": self.implementation,
            "seed": self.seed,
            "nodes": list(self.nodes),
            "timing": dict(self.timing),
            "timing_profile": dict(self.timing_profile or
                                   {"name": "declared", "timing": dict(self.timing)}),
            "clock_skew_ms": self.clock_skew_ms,
            "conflict_policy": self.conflict_policy,
            "conflict_policies": list(self.policies or (self.conflict_policy,)),
            "capabilities": self.capabilities,
            "backend": self.backend,
            "scenario": self.scenario,
        }
        if self.manifest is not None:
            meta["manifest"] = str(self.manifest.path)
        meta.update(self.meta_extra)
        return meta


@dataclass
class RunRecord:
    """What one run left: its history and index, the verdicts, how long it took, what
    the host did meanwhile, and the harness's own failure if one cut it short."""

    spec: RunSpec
    entries: list[Entry]
    index: HistoryIndex
    verdicts: list[Verdict]
    wall_s: float
    failure: HarnessError | None = None
    host_load: dict[str, Any] | None = None

    @property
    def faults(self) -> list[Entry]:
        return [e for e in self.entries if e.type == "fault"]


# ---- judging -------------------------------------------------------------------------


def judge(entries: Sequence[Entry], catalogue: Sequence[Requirement], *,
          progress: Callable[[str], None] | None = None,
          failure: HarnessError | None = None) -> tuple[HistoryIndex, list[Verdict]]:
    """The index of a history and the verdict of every requirement on it; a run the
    harness cut short (``failure``) has its failures turned to ``error``."""
    index = HistoryIndex.build(entries)
    verdicts = run_checks(entries, catalogue, progress=progress, index=index)
    meta = run_meta(entries)
    skipped = (meta.get("preflight") or {}).get("skipped")
    if skipped:  # a scenario preflight did not start: why each requirement is untested
        verdicts = [replace(v, evidence=f"not exercised: scenario {meta.get('scenario')!r} "
                                        f"was skipped on this machine: {skipped}")
                    if v.status == "untested" else v for v in verdicts]
    if failure is not None:
        verdicts = cut_short(verdicts, failure)
    return index, verdicts


def harness_failure(exc: Exception, started_up: bool) -> HarnessError | None:
    """What an exception that ended a run means: a failure of the harness's own parts
    (a partial report, verdict ``error``), or None for an error the user acts on, which is
    re-raised as it was (one line, exit 2): a bad scenario step, a node that would not
    start or restart, a missing tool. A Toxiproxy that answered with an error, or any
    fault plane's error once the run is going, is the harness's."""
    if isinstance(exc, HarnessError):
        return exc
    if isinstance(exc, ToxiproxyError) or (started_up and isinstance(exc, ChaosError)):
        return HarnessError(describe(exc))
    if isinstance(exc, USER_ERRORS):
        return None
    return HarnessError(describe(exc))


def cut_short(verdicts: Sequence[Verdict], failure: HarnessError) -> list[Verdict]:
    """The verdicts of a run the harness could not finish: a failure may come from the
    schedule being cut off (a partition never healed, a read round never made), so it
    is not judged; what passed was observed and stands, but the run's verdict is
    ``error`` whatever it holds."""
    out = []
    for v in verdicts:
        if v.status == "fail":
            v = replace(v, status="error",
                        evidence=f"not judged: the run was cut short by a harness error "
                                 f"({failure}); the failure was: {v.evidence}")
        out.append(v)
    return out


# ---- executing -----------------------------------------------------------------------


def execute(spec: RunSpec, *, progress: Callable[[str], None] = _quiet,
            cluster: Cluster | None = None) -> RunRecord:
    """Run ``spec`` and judge it. ``cluster``: one already running (its nodes' starts are
    carried into this history as they are now), which is left running and recording
    where it recorded before.

    An error the user acts on (a node that will not start, a bad step) is raised as it
    is; a failure of the harness's own parts ends the run with a partial record
    (``failure``) whose failed verdicts are not judged. The simulator raises whatever
    goes wrong: it has no parts of its own to fail."""
    if spec.run_dir is not None:
        spec.run_dir.mkdir(parents=True, exist_ok=True)
    history = History(spec.run_dir / "history.jsonl") if spec.run_dir is not None else History()
    if spec.run_dir is not None:
        (spec.run_dir / "schedule.json").write_text(json.dumps(
            {"scenario": spec.scenario, "seed": spec.seed,
             "ops": [op.to_json() for op in spec.ops]}, indent=1))
    started = time.time()
    failure: HarnessError | None = None
    host_load: dict[str, Any] | None = None
    try:
        if spec.backend == SIMULATION:
            _run_simulated(spec, history, progress)
        elif cluster is not None:
            failure, host_load = _run_on(cluster, spec, history, progress)
        else:
            failure, host_load = _run_fresh(spec, history, progress)
    finally:
        history.close()
    wall_s = time.time() - started
    entries = history.entries()
    # A fresh real cluster is a run a person waits for: say where it is up to.
    fresh = spec.backend != SIMULATION and cluster is None
    if fresh:
        progress(f"cluster stopped after {wall_s:.1f} s; checking requirements")
    index, verdicts = judge(entries, spec.catalogue, progress=progress if fresh else None,
                            failure=failure)
    return RunRecord(spec, entries, index, verdicts, wall_s, failure, host_load)


def _run_simulated(spec: RunSpec, history: History, progress: Callable[[str], None]) -> None:
    with core_context(spec.core):
        sim = SimulatedCluster(spec.nodes, timing=spec.timing, policy=spec.policy,
                               seed=spec.seed, gossip_key=spec.gossip_key, history=history)
        history.append("meta", "run", args=spec.meta())
        with sim:
            Execution(sim, spec.catalogue, spec.timing, progress=progress,
                      on_step=step_listener(progress, spec.scenario)).run(spec.ops)


def _run_fresh(spec: RunSpec, history: History, progress: Callable[[str], None]
               ) -> tuple[HarnessError | None, dict[str, Any] | None]:
    """A fresh cluster for this run alone, stopped at its end whatever happens."""
    history.append("meta", "run", args=spec.meta())
    cluster = cluster_for(spec, history, progress)
    started_up = False
    failure: HarnessError | None = None
    load = HostLoadMonitor(history)
    try:
        with cluster:
            started_up = True
            progress(f"cluster up: {len(spec.nodes)} nodes ready")
            failure = _operations(cluster, spec, history, progress, load)
    except Exception as exc:  # the start, or the stop, failed (the cluster has stopped)
        failure = failure or harness_failure(exc, started_up)
        if failure is None:
            raise
        progress(f"harness error: {failure}")
    return failure, load.summary()


def cluster_for(spec: RunSpec, history: History,
                progress: Callable[[str], None] = _quiet) -> Cluster:
    """The cluster ``spec`` runs on, not yet started: its nodes' logs in the run's
    directory, everything it does recorded in ``history``."""
    if spec.manifest is None or spec.run_dir is None:
        raise ValueError("a real cluster needs the implementation's manifest and a run dir")
    return Cluster(spec.manifest, len(spec.nodes), spec.run_dir, backend=spec.backend,
                   seed=spec.seed, base_port=spec.base_port, toxiproxy_url=spec.toxiproxy_url,
                   history=history, progress=progress)


def _run_on(cluster: Cluster, spec: RunSpec, history: History,
            progress: Callable[[str], None]
            ) -> tuple[HarnessError | None, dict[str, Any] | None]:
    """A run on a cluster that is already up: it records into this run's history for
    the run's length, each node's start carried over as the cluster finds it now."""
    history.append("meta", "run", args=spec.meta())
    load = HostLoadMonitor(history)
    with _recording(cluster, history):
        _carry_over(cluster, history)
        failure = _operations(cluster, spec, history, progress, load)
    return failure, load.summary()


def _operations(cluster: Cluster, spec: RunSpec, history: History,
                progress: Callable[[str], None], load: HostLoadMonitor) -> HarnessError | None:
    """The operations under the host monitors; the harness's own failure, if one."""
    failure: HarnessError | None = None
    lag = LagMonitor(history, float(spec.timing["probe_timeout_ms"]))
    try:
        with lag, load:
            for deviation in cluster.probe_undeclared():
                progress(f"contract: {deviation} (an undeclared capability must answer "
                         "501; gossipcert check-contract fails on it, certify judges only "
                         "what is declared)")
            Execution(cluster, spec.catalogue, spec.timing, progress=progress,
                      on_step=step_listener(progress, spec.scenario)).run(spec.ops)
    except Exception as exc:
        failure = harness_failure(exc, started_up=True)
        if failure is None:
            raise
        history.append("meta", "harness-error", args={"error": str(failure)})
        progress(f"harness error: {failure}; stopping the cluster")
    if lag.episodes:
        progress(f"the harness's host stalled {lag.episodes} time(s) beyond the probe "
                 f"timeout (worst {lag.worst_ms:.0f} ms): a timing failure these stalls "
                 "account for inside its window is inconclusive")
    else:
        progress(f"harness scheduling lag: worst {lag.worst_ms:.0f} ms (limit "
                 f"{lag.threshold_ms:g} ms, the probe timeout)")
    progress(_load_line(load))
    return failure


@contextlib.contextmanager
def _recording(cluster: Cluster, history: History) -> Iterator[None]:
    """Point the cluster's recording at ``history`` for a while, then back; events polled
    so far go to the history they belong to, so no entry straddles two histories."""
    before = cluster.history
    cluster.record_to(history)
    try:
        yield
    finally:
        cluster.record_to(before)


def _carry_over(cluster: Cluster, history: History) -> None:
    """Each node's start, as this run finds it: already running since an earlier run,
    ready as ``GET /v1/node`` says now. Lives begin here for the checkers."""
    for node_id in cluster.live_nodes():
        call = history.new_call()
        args = {"gossip": cluster.addresses[node_id].gossip_addr, "carried_over": True}
        history.append("invoke", "start", node=node_id, call=call, args=args)
        reply = cluster.client(node_id).node()
        body = reply.body if isinstance(reply.body, dict) else {}
        if not (reply.ok and body.get("ready")):
            raise LaunchError(f"node {node_id} is not ready at the start of a run on a "
                              f"running cluster (status {reply.status})")
        history.append("ok", "start", node=node_id, call=call, args=args, result=body)


def _load_line(load: HostLoadMonitor) -> str:
    figures = load.summary()
    line = (f"host CPU: {figures['host_busy_mean']:.0%} busy on average over "
            f"{figures['cpus']} core(s); harness {figures['harness_cpu_s']} s, link plane "
            f"{figures['link_plane_cpu_s']} s, nodes {figures['nodes_cpu_s']} s of CPU")
    if load.episodes:
        line += (f"; saturated {load.episodes} time(s), {figures['saturated_s']} s in all: "
                 "a timing failure inside a saturation the nodes did not cause is "
                 "inconclusive")
        if load.by_nodes:
            line += (f" ({load.by_nodes} of them caused by the nodes under test, which "
                     "excuses none of their failures)")
    return line


# ---- publishing ----------------------------------------------------------------------


def publish(record: RunRecord, run_dir: Path, *, mode: str,
            run_extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The record's report directory: its history (written when it was kept in memory)
    and every report (:func:`write_reports`), with the run info the record holds."""
    spec = record.spec
    if spec.run_dir is None or spec.run_dir.resolve() != run_dir.resolve():
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "history.jsonl").write_text(
            "".join(e.to_json() + "\n" for e in record.entries), encoding="utf-8")
    run_info: dict[str, Any] = {
        "nodes": list(spec.nodes),
        "backend": spec.backend,
        "timing": dict(spec.timing),
        "conflict_policy": spec.conflict_policy,
        "wall_time_s": round(record.wall_s, 2),
        "gossipcert_version": gossipcert_version(),
        "history": "history.jsonl",
        "scenario": spec.scenario,
    }
    if spec.manifest is not None:
        run_info.update(manifest_info(spec.manifest))
    if spec.backend != SIMULATION:
        run_info["host"] = host_description()
    if spec.run_dir is not None:
        run_info["schedule"] = "schedule.json"
    if record.host_load is not None:
        run_info["host_load"] = record.host_load
    run_info.update(run_extra or {})
    return write_reports(run_dir, record.entries, record.index, record.verdicts,
                         catalogue=spec.catalogue, mode=mode, run_info=run_info,
                         harness_error=error_record(record))


def manifest_info(manifest: Manifest) -> dict[str, Any]:
    """A report's account of the manifest a run used: its name (not a local path), the
    hash of its bytes, the version it declares and the profile its timing names."""
    info = manifest_provenance(manifest.path)
    info["manifest_version"] = str(manifest.raw.get("version", ""))
    if manifest.path == MAELSTROM_TEMPLATE:  # one shared manifest: the node is the binary
        command = list(((manifest.raw.get("launch") or {}).get("process") or {})
                       .get("command") or [])
        if "--node" in command[:-1]:
            binary = manifest_provenance(command[command.index("--node") + 1])
            info["implementation_file"] = binary["manifest"]
            if "manifest_sha256" in binary:
                info["implementation_sha256"] = binary["manifest_sha256"]
    timing = manifest.raw.get("timing")
    if isinstance(timing, Mapping) and timing.get("profile"):
        info["manifest_timing_profile"] = str(timing["profile"])
    return info


def write_reports(run_dir: Path, entries: Sequence[Entry], index: HistoryIndex,
                  verdicts: Sequence[Verdict], *, catalogue: Sequence[Requirement], mode: str,
                  run_info: Mapping[str, Any],
                  harness_error: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every report of one run, from its history and verdicts alone (what the run was
    comes from the history's meta entry), so a fresh run and a history re-rendered later
    get the same reports. ``mode`` is ``suite`` for one scenario run of a suite (its
    verdicts are merged later, with the others'), else ``quick`` or ``scenario``: a single
    run certifies only what it exercised, and its report says what it left out."""
    meta = run_meta(entries)
    scenario = str(meta.get("scenario") or "default")
    run_info = {**run_info, **history_provenance(entries)}
    verdicts = list(verdicts)
    if mode != "suite":
        verdicts = merge_verdicts(catalogue, [(scenario, verdicts)])
    policy = meta.get("conflict_policy")
    timing = dict(meta.get("timing") or {})
    cert = certificate(
        catalogue=catalogue, verdicts=verdicts,
        capabilities=list(meta.get("capabilities") or []),
        policies=list(meta.get("conflict_policies") or ([policy] if policy else [])),
        timing_profile=meta.get("timing_profile") or {"name": "declared", "timing": timing},
        scenarios=[scenario], mode=mode)
    report = build_report(implementation=str(meta.get("implementation") or "unknown"),
                          seed=meta.get("seed"), verdicts=verdicts,
                          faults=[e for e in entries if e.type == "fault"], run=run_info,
                          certificate=cert, harness_error=harness_error,
                          preflight=preflight_of(scenario, meta))
    write_all(run_dir, report, entries, index)
    return report


@dataclass(frozen=True)
class PublishedRun:
    """One scenario run of a suite as the suite's report needs it."""

    scenario: str
    run_dir: Path
    report: Mapping[str, Any]
    verdicts: Sequence[Verdict]
    entries: Sequence[Entry]
    index: HistoryIndex


def write_suite_report(report_dir: Path, runs: Sequence[PublishedRun], *,
                       catalogue: Sequence[Requirement], run_info: Mapping[str, Any],
                       harness_error: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A suite's own report over its scenario runs: one verdict per requirement (the
    merge of every run's), the certificate over them, each run listed with its start,
    and every run's faults (each with its scenario), so the report stands alone; the
    figures are the first run's, a failing requirement's those of the run that judged it.
    What the suite claimed comes from the first run's certificate."""
    first = runs[0]
    cert0 = first.report["certificate"]
    verdicts = merge_verdicts(catalogue, [(r.scenario, r.verdicts) for r in runs])
    cert = certificate(catalogue=catalogue, verdicts=verdicts,
                       capabilities=cert0["capabilities_declared"],
                       policies=cert0["conflict_policies"],
                       timing_profile=cert0["timing_profile"],
                       scenarios=[r.scenario for r in runs], mode="suite")
    preflight: dict[str, list[Any]] = {"skipped": [], "notes": []}
    for r in runs:
        for part, items in (r.report.get("preflight") or {}).items():
            preflight[part] += items
    faults = [{**f, "scenario": r.scenario} for r in runs for f in r.report.get("faults") or []]
    listed = []
    for r in runs:
        entry = run_summary(r.scenario, r.report, r.verdicts, r.run_dir.relative_to(report_dir))
        started = (r.report.get("run") or {}).get("started_at_ms")
        if started is not None:
            entry["started_at_ms"] = started
        listed.append(entry)
    run_info = dict(run_info)
    for key in ("started_at_ms", "started_at", "implementation_version", "fault_planes"):
        run_info.pop(key, None)  # the suite's own, from its runs below
    starts = [r.report["run"] for r in runs if "started_at_ms" in (r.report.get("run") or {})]
    if starts:
        first_run = min(starts, key=lambda run: float(run["started_at_ms"]))
        run_info["started_at_ms"] = first_run["started_at_ms"]
        run_info["started_at"] = first_run["started_at"]
    versions = sorted({str(v) for r in runs
                       if (v := (r.report.get("run") or {}).get("implementation_version"))
                       and v != "unknown"})
    run_info["implementation_version"] = ", ".join(versions) or "unknown"
    run_info["fault_planes"] = sorted({p for r in runs
                                       for p in (r.report.get("run") or {}).get("fault_planes")
                                       or []})
    report = build_report(
        implementation=str(first.report["implementation"]), seed=first.report.get("seed"),
        verdicts=verdicts, faults=faults, run=run_info, certificate=cert, runs=listed,
        harness_error=harness_error, preflight=preflight)
    # The figures are the first run's that ran (a skipped one has no history to show).
    shown = next((r for r in runs if "skipped" not in r.report.get("run", {})), first)
    # A failing requirement's figure comes from the run that judged it.
    indexes: dict[str, HistoryIndex] = {}
    for r in runs:
        indexes.setdefault(r.scenario, r.index)
    write_all(report_dir, report, shown.entries, shown.index, scenario_indexes=indexes)
    return report


def preflight_of(scenario: str, meta: Mapping[str, Any]) -> dict[str, list[Any]]:
    """The report's ``preflight`` from a history's meta (``{"skipped": reason or None,
    "notes": [...]}``, see :func:`harness.run.preflight.fit`)."""
    found = meta.get("preflight") or {}
    skipped = found.get("skipped")
    return {"skipped": [{"scenario": scenario, "reason": str(skipped)}] if skipped else [],
            "notes": [{"scenario": scenario, "note": str(n)} for n in found.get("notes") or []]}


def skipped_run(spec: RunSpec, reason: str) -> RunRecord:
    """The record of a run preflight did not start (this machine lacks what it needs):
    a history of its meta entry alone, so every requirement it would have exercised is
    untested, each saying why."""
    spec = replace(spec, run_dir=None, meta_extra={
        **spec.meta_extra, "preflight": {**dict(spec.meta_extra.get("preflight") or {}),
                                         "skipped": reason}})
    history = History()
    history.append("meta", "run", args=spec.meta())
    history.close()
    entries = history.entries()
    index, verdicts = judge(entries, spec.catalogue)
    return RunRecord(spec, entries, index, verdicts, 0.0)


def run_meta(entries: Sequence[Entry]) -> dict[str, Any]:
    """The arguments of a history's opening meta entry (empty when it has none)."""
    meta = next((e for e in entries if e.type == "meta" and e.op == "run"), None)
    return dict(meta.args) if meta is not None else {}


def recorded_failure(entries: Sequence[Entry]) -> HarnessError | None:
    """The harness failure a history recorded (a ``meta harness-error`` entry), so a
    history judged again is cut short where the run was."""
    for e in entries:
        if e.type == "meta" and e.op == "harness-error":
            return HarnessError(str(e.args.get("error") or "the harness failed"))
    return None


def error_record(record: RunRecord) -> dict[str, Any] | None:
    """The report's ``harness_error``: what cut the run short, where."""
    if record.failure is None:
        return None
    return {"message": str(record.failure), "scenario": record.spec.scenario,
            "kind": type(record.failure).__name__}


# ---- the simulator as a function -----------------------------------------------------


def simulate(ops: Sequence[Op], nodes: Sequence[str], *, timing: Mapping[str, Any] | None = None,
             policy: str = "lww", core: str = "", seed: int = 0, gossip_key: str | None = None,
             catalogue: Sequence[Requirement] | None = None, scenario: str = "",
             progress: Callable[[str], None] | None = None
             ) -> tuple[list[Verdict], list[Entry]]:
    """Run operations on a fresh simulated cluster of reference cores (inside ``core``'s
    context) and judge its history with the checkers of real runs."""
    spec = RunSpec(
        backend=SIMULATION, nodes=tuple(nodes), seed=seed,
        timing=dict(timing if timing is not None else load_manifest("reference").timing),
        ops=tuple(ops), scenario=scenario,
        catalogue=tuple(catalogue if catalogue is not None else load_catalogue()),
        policy=policy, core=core, gossip_key=gossip_key)
    record = execute(spec, progress=progress or _quiet)
    return record.verdicts, record.entries
