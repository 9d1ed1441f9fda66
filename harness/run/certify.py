"""``gossipcert certify``: from manifest to report.

By default a suite: every scenario that a requirement the manifest claims names (see
:mod:`harness.run.suite`), each a run of its own in ``scenarios/<name>/`` with its complete
report, merged into one report with one verdict at the top of the report directory.
``--scenario NAME`` runs one scenario and ``--quick`` the default one alone; their
reports list what they left untested, and their verdict cannot be PASS unless that
scenario exercises every claimed MUST.

One scenario run: manifest + scenario -> schedule (from the seed) -> cluster up -> the
schedule's workload and faults -> history -> verdicts per requirement -> reports.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gossipcert.chaos.errors import ChaosError
from gossipcert.chaos.toxiproxy_client import ToxiproxyError
from gossipcert.harness import __version__
from gossipcert.harness.drivers.backends import BACKENDS, unknown_backend
from gossipcert.harness.drivers.cluster import Cluster
from gossipcert.harness.drivers.hostlag import LagMonitor
from gossipcert.harness.drivers.hostload import HostLoadMonitor
from gossipcert.harness.errors import (
    USER_ERRORS,
    VERDICT_EXIT,
    GossipcertError,
    HarnessError,
    describe,
)
from gossipcert.harness.history import Entry, History
from gossipcert.harness.judging import run_checks
from gossipcert.harness.judging.index import DEFAULT_CLOCK_SKEW_MS, HistoryIndex
from gossipcert.harness.judging.verdict import Requirement, Verdict, load_catalogue
from gossipcert.harness.manifest import Manifest, load_manifest, with_run_options
from gossipcert.harness.profiles import DEFAULT_PROFILE, JudgedTiming, judged_timing
from gossipcert.harness.run.report import build_report
from gossipcert.harness.run.reporting import report_writers, write_all
from gossipcert.harness.run.suite import (
    PlannedRun,
    certificate,
    judged_counts,
    merge_verdicts,
    run_summary,
    suite_plan,
)
from gossipcert.harness.workloads.scenario import (
    Scenario,
    load_scenario,
    run_manifest,
    run_operations,
    schedule,
)


@dataclass
class CertifyOptions:
    impl: str = "reference"
    backend: str = "process"
    nodes: int = 5
    seed: int | None = None
    report_dir: Path | None = None
    base_port: int | None = None
    toxiproxy_url: str | None = None
    quiet_s: float | None = None
    partition_s: float | None = None
    scenario: str | None = None  # None: the whole suite
    quick: bool = False  # the default scenario alone
    profile: str = DEFAULT_PROFILE  # the timing profile declared timing is capped at
    clock_skew_ms: float = DEFAULT_CLOCK_SKEW_MS  # node clocks vs the harness's
    progress: Callable[[str], None] = field(default=lambda line: None)


@dataclass
class CertifyResult:
    exit_code: int
    report_dir: Path
    report: dict[str, Any]


def default_report_dir(manifest: Manifest, seed: int) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path("gossipcert-runs") / f"{stamp}-{manifest.name}-s{seed}"


class _Progress:
    def __init__(self, sink: Callable[[str], None]) -> None:
        self.sink = sink
        self.t0 = time.monotonic()

    def __call__(self, msg: str) -> None:
        self.sink(f"[{time.monotonic() - self.t0:6.1f}s] {msg}")


@dataclass
class ScenarioRun:
    """One scenario run of a certification: its verdicts, history and report (which
    holds its seed, policy and timing)."""

    scenario: str
    run_dir: Path
    verdicts: list[Verdict]
    entries: list[Entry]
    index: HistoryIndex  # of ``entries``: what the checkers judged and the figures draw
    report: dict[str, Any]
    wall_s: float
    failure: HarnessError | None = None  # the harness failed and cut the run short


def certify(opts: CertifyOptions) -> CertifyResult:
    if opts.nodes < 3:
        raise GossipcertError("--nodes must be at least 3 (a kill and a partition need them)")
    if opts.backend not in BACKENDS:
        raise GossipcertError(unknown_backend(opts.backend))
    if opts.quick and opts.scenario is not None:
        raise GossipcertError("--quick runs the default scenario alone: drop --scenario")
    report_writers()  # no writers installed: say so before any node starts
    manifest = load_manifest(opts.impl)
    manifest.launch_for(opts.backend)  # a missing launch section is bad input, before any start
    if opts.clock_skew_ms < 0:
        raise GossipcertError("--clock-skew-ms must not be negative")
    judged = judged_timing(manifest.declared_timing, opts.profile)
    catalogue = load_catalogue()
    policies = manifest.conflict_policies or (manifest.conflict_policy,)
    if opts.quick or opts.scenario is not None:
        mode = "quick" if opts.quick else "scenario"
        plan = [PlannedRun(opts.scenario or "default")]
    else:
        mode = "suite"
        plan = suite_plan(catalogue, manifest.capabilities, policies)
        if not plan:
            raise GossipcertError(
                f"{manifest.path}: the declared capabilities {manifest.capabilities} claim no "
                "requirement of the catalogue: nothing to certify"
            )
    scenarios = [load_scenario(p.scenario) for p in plan]  # every file checked before a start
    seed = opts.seed if opts.seed is not None else random.SystemRandom().randrange(1, 10**6)
    report_dir = opts.report_dir or default_report_dir(manifest, seed)
    report_dir.mkdir(parents=True, exist_ok=True)
    progress = _Progress(opts.progress)
    progress(judged.note())
    if mode == "suite":
        progress(f"suite of {len(plan)} scenarios for {manifest.name}: "
                 f"{', '.join(p.scenario for p in plan)}; seed {seed}, run dir {report_dir}")
    runs: list[ScenarioRun] = []
    for number, (planned, scenario) in enumerate(zip(plan, scenarios, strict=True), 1):
        run_dir = report_dir / "scenarios" / scenario.name if mode == "suite" else report_dir
        if mode == "suite":
            progress(f"scenario {number}/{len(plan)}: {scenario.name}")
        runs.append(_run_scenario(opts, manifest, scenario, planned, seed, run_dir, catalogue,
                                  progress, policies, mode, judged))
        if runs[-1].failure is not None and number < len(plan):
            progress(f"the suite stops: {len(plan) - number} scenario(s) not run")
            break
    if mode != "suite":
        only = runs[0]
        return CertifyResult(VERDICT_EXIT[only.report["verdict"]], report_dir, only.report)
    verdicts = merge_verdicts(catalogue, [(r.scenario, r.verdicts) for r in runs])
    cert = certificate(catalogue=catalogue, verdicts=verdicts,
                       capabilities=manifest.capabilities, policies=policies,
                       timing_profile=judged.describe(), scenarios=[r.scenario for r in runs],
                       mode=mode)
    run_info = {
        "nodes": runs[0].report["run"].get("nodes", []),
        "backend": opts.backend,
        "timing": judged.timing,
        "wall_time_s": round(sum(r.wall_s for r in runs), 2),
        "gossipcert_version": __version__,
        "manifest": str(manifest.path),
    }
    failed = next((r for r in runs if r.failure is not None), None)
    report = build_report(
        implementation=manifest.name, seed=seed,
        verdicts=verdicts, faults=[], run=run_info, certificate=cert,
        runs=[run_summary(r.scenario, r.report, r.verdicts, r.run_dir.relative_to(report_dir))
              for r in runs],
        harness_error=_error_record(failed.failure, failed.scenario) if failed else None,
    )
    write_all(report_dir, report, runs[0].entries, runs[0].index)
    progress(f"suite done: {report['verdict'].upper()} over {len(runs)} scenarios")
    return CertifyResult(VERDICT_EXIT[report["verdict"]], report_dir, report)


def _run_scenario(
    opts: CertifyOptions,
    declared: Manifest,
    scenario: Scenario,
    planned: PlannedRun,
    seed: int,
    report_dir: Path,
    catalogue: Sequence[Requirement],
    progress: Callable[[str], None],
    policies: Sequence[str],
    mode: str,
    judged: JudgedTiming,
) -> ScenarioRun:
    """Run one scenario on a fresh cluster and write its reports into ``report_dir``."""
    manifest = run_manifest(declared, scenario)  # the scenario may pick the policy
    if planned.policy is not None:
        manifest = with_run_options(manifest, conflict_policy=planned.policy,
                                    encryption=scenario.encryption)
    node_ids = [f"n{i + 1}" for i in range(opts.nodes)]
    ops = schedule(scenario, node_ids, seed, judged.timing, quiet_s=opts.quiet_s,
                   partition_s=opts.partition_s)
    report_dir.mkdir(parents=True, exist_ok=True)
    history = History(report_dir / "history.jsonl")
    history.append("meta", "run", args={
        "implementation": manifest.name,
        "seed": seed,
        "nodes": node_ids,
        "timing": judged.timing,  # what every bound derives from (the profile's ceilings)
        "timing_profile": judged.describe(),
        "clock_skew_ms": opts.clock_skew_ms,
        "conflict_policy": manifest.conflict_policy,
        "conflict_policies": list(policies),
        "capabilities": manifest.capabilities,
        "backend": opts.backend,
        "scenario": scenario.name,
    })
    (report_dir / "schedule.json").write_text(
        json.dumps({"scenario": scenario.name, "seed": seed,
                    "ops": [op.to_json() for op in ops]}, indent=1)
    )
    started = time.time()
    progress(f"scenario {scenario.name}: {len(ops)} operations; starting {opts.nodes} nodes "
             f"of {manifest.name} ({opts.backend} backend, {manifest.conflict_policy}), "
             f"seed {seed}, run dir {report_dir}")
    cluster = Cluster(manifest, opts.nodes, report_dir, backend=opts.backend, seed=seed,
                      base_port=opts.base_port, toxiproxy_url=opts.toxiproxy_url,
                      history=history, progress=progress)
    started_up = False
    failure: HarnessError | None = None
    load = HostLoadMonitor(history)
    try:
        with cluster:
            started_up = True
            progress(f"cluster up: {opts.nodes} nodes ready")
            lag = LagMonitor(history, judged.timing["probe_timeout_ms"])
            try:
                with lag, load:
                    run_operations(cluster, catalogue, ops, judged.timing, progress)
            except Exception as exc:
                failure = harness_failure(exc, started_up)
                if failure is None:
                    raise
                history.append("meta", "harness-error", args={"error": str(failure)})
                progress(f"harness error: {failure}; stopping the cluster")
            if lag.episodes:
                progress(f"the harness's host stalled {lag.episodes} time(s) beyond the probe "
                         f"timeout (worst {lag.worst_ms:.0f} ms): timing verdicts of this run "
                         "are inconclusive")
            else:
                progress(f"harness scheduling lag: worst {lag.worst_ms:.0f} ms (limit "
                         f"{lag.threshold_ms:g} ms, the probe timeout)")
            progress(_load_line(load))
    except Exception as exc:  # the start, or the stop, failed (the cluster has stopped)
        failure = failure or harness_failure(exc, started_up)
        if failure is None:
            raise
        progress(f"harness error: {failure}")
    finally:
        history.close()
    wall_s = time.time() - started
    progress(f"cluster stopped after {wall_s:.1f} s; checking requirements")
    entries = history.entries()
    index = HistoryIndex.build(entries)
    verdicts = run_checks(entries, catalogue, progress=progress, index=index)
    if failure is not None:
        verdicts = cut_short(verdicts, failure)
    if mode != "suite":
        # A single scenario certifies only what it exercised: say what it left out.
        verdicts = merge_verdicts(catalogue, [(scenario.name, verdicts)])
    faults = [
        {"time_ms": e.time_ms, "op": e.op, "node": e.node, "args": e.args}
        for e in entries if e.type == "fault"
    ]
    run_info = {
        "nodes": cluster.node_ids,
        "backend": opts.backend,
        "timing": judged.timing,
        "conflict_policy": manifest.conflict_policy,
        "wall_time_s": round(wall_s, 2),
        "gossipcert_version": __version__,
        "history": "history.jsonl",
        "manifest": str(manifest.path),
        "scenario": scenario.name,
        "schedule": "schedule.json",
        "host_load": load.summary(),
    }
    cert = certificate(catalogue=catalogue, verdicts=verdicts,
                       capabilities=manifest.capabilities, policies=policies,
                       timing_profile=judged.describe(), scenarios=[scenario.name], mode=mode)
    report = build_report(implementation=manifest.name, seed=seed, verdicts=verdicts,
                          faults=faults, run=run_info, certificate=cert,
                          harness_error=_error_record(failure, scenario.name))
    write_all(report_dir, report, entries, index)
    if failure is not None:
        progress(f"scenario {scenario.name}: ERROR (the harness failed; partial report)")
    elif mode == "suite":
        counts = judged_counts(verdicts)
        progress(f"scenario {scenario.name}: {counts['pass']} passed, {counts['fail']} failed, "
                 f"{counts['error']} not judged")
    else:
        progress(f"scenario {scenario.name}: {report['verdict'].upper()}")
    return ScenarioRun(scenario.name, report_dir, verdicts, entries, index, report, wall_s,
                       failure)


def _load_line(load: HostLoadMonitor) -> str:
    figures = load.summary()
    line = (f"host CPU: {figures['host_busy_mean']:.0%} busy on average over "
            f"{figures['cpus']} core(s); harness {figures['harness_cpu_s']} s, link plane "
            f"{figures['link_plane_cpu_s']} s, nodes {figures['nodes_cpu_s']} s of CPU")
    if load.episodes:
        line += (f"; saturated {load.episodes} time(s), {figures['saturated_s']} s in all: "
                 "timing verdicts of this run are inconclusive")
    return line


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


def _error_record(failure: HarnessError | None, scenario: str) -> dict[str, Any] | None:
    if failure is None:
        return None
    return {"message": str(failure), "scenario": scenario, "kind": type(failure).__name__}


def print_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
