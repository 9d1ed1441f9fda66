"""``gossipcert certify``: from manifest to report.

By default a suite: every scenario that a requirement the manifest claims names (see
:mod:`harness.run.suite`), each a run of its own in ``scenarios/<name>/`` with its complete
report, merged into one report with one verdict at the top of the report directory.
``--scenario NAME`` runs one scenario and ``--quick`` the default one alone; their
reports list what they left untested, and their verdict cannot be PASS unless that
scenario exercises every claimed MUST.

One scenario run: manifest + scenario -> schedule (from the seed) -> preflight (every
scenario fitted to this machine's fault planes before the first node starts; one it
cannot run is skipped, its requirements untested with the reason) -> cluster up -> the
schedule's workload and faults -> history -> verdicts per requirement -> reports.
"""

from __future__ import annotations

import random
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gossipcert.harness.drivers.backends import BACKENDS, unknown_backend
from gossipcert.harness.errors import (
    VERDICT_EXIT,
    GossipcertError,
)
from gossipcert.harness.judging.index import DEFAULT_CLOCK_SKEW_MS
from gossipcert.harness.judging.verdict import Requirement, load_catalogue
from gossipcert.harness.manifest import (
    MAELSTROM_PREFIX,
    NAMED_MANIFESTS,
    Manifest,
    load_manifest,
    with_run_options,
)
from gossipcert.harness.profiles import DEFAULT_PROFILE, JudgedTiming, judged_timing
from gossipcert.harness.run.pipeline import (
    Progress,
    PublishedRun,
    RunRecord,
    RunSpec,
    default_report_dir,
    error_record,
    execute,
    manifest_info,
    node_ids,
    publish,
    skipped_run,
    write_suite_report,
)
from gossipcert.harness.run.preflight import (
    Fit,
    PlaneOffer,
    check_backend,
    fit,
    offers,
)
from gossipcert.harness.run.report import host_description, relative_path
from gossipcert.harness.run.reporting import report_writers
from gossipcert.harness.run.suite import (
    PlannedRun,
    judged_counts,
    suite_plan,
)
from gossipcert.harness.workloads.scenario import (
    Scenario,
    load_scenario,
    run_manifest,
    schedule,
)
from gossipcert.specs import gossipcert_version


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


@dataclass
class ScenarioRun:
    """One scenario run of a certification: its record and its published report."""

    record: RunRecord
    run_dir: Path
    report: dict[str, Any]

    @property
    def scenario(self) -> str:
        return self.record.spec.scenario


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
    # Preflight: what this machine offers, and what each scenario needs of it.
    planes = offers(manifest, opts.backend, check_backend(opts.backend))
    prepared = [_prepare(opts, manifest, scenario, planned, seed, judged, planes)
                for planned, scenario in zip(plan, scenarios, strict=True)]
    report_dir = opts.report_dir or default_report_dir(manifest.name, f"s{seed}")
    report_dir.mkdir(parents=True, exist_ok=True)
    progress = Progress(opts.progress)
    progress(judged.note())
    if mode == "suite":
        progress(f"suite of {len(plan)} scenarios for {manifest.name}: "
                 f"{', '.join(p.scenario for p in plan)}; seed {seed}, run dir {report_dir}")
    for scenario, (_, fitted) in zip(scenarios, prepared, strict=True):
        if fitted.skipped is not None:
            progress(f"scenario {scenario.name} cannot run here and is skipped: "
                     f"{fitted.skipped}")
        for note in fitted.notes:
            progress(f"scenario {scenario.name}: {note}")
    runs: list[ScenarioRun] = []
    for number, (scenario, (run_manifest_, fitted)) in enumerate(
            zip(scenarios, prepared, strict=True), 1):
        run_dir = report_dir / "scenarios" / scenario.name if mode == "suite" else report_dir
        if mode == "suite":
            progress(f"scenario {number}/{len(plan)}: {scenario.name}")
        runs.append(_run_scenario(opts, run_manifest_, scenario, fitted, seed, run_dir,
                                  catalogue, progress, policies, mode, judged))
        if runs[-1].record.failure is not None and number < len(plan):
            progress(f"the suite stops: {len(plan) - number} scenario(s) not run")
            break
    if mode != "suite":
        only = runs[0]
        return CertifyResult(VERDICT_EXIT[only.report["verdict"]], report_dir, only.report)
    run_info = {
        "nodes": runs[0].report["run"].get("nodes", []),
        "backend": opts.backend,
        "timing": judged.timing,
        "wall_time_s": round(sum(r.record.wall_s for r in runs), 2),
        "gossipcert_version": gossipcert_version(),
        **manifest_info(manifest),
        "host": host_description(),
        "command": certify_command(opts, seed),
    }
    failed = next((r for r in runs if r.record.failure is not None), None)
    report = write_suite_report(
        report_dir,
        [PublishedRun(r.scenario, r.run_dir, r.report, r.record.verdicts, r.record.entries,
                      r.record.index) for r in runs],
        catalogue=catalogue, run_info=run_info,
        harness_error=error_record(failed.record) if failed else None)
    progress(f"suite done: {report['verdict'].upper()} over {len(runs)} scenarios")
    return CertifyResult(VERDICT_EXIT[report["verdict"]], report_dir, report)


def certify_command(opts: CertifyOptions, seed: int) -> str:
    """The command that runs this certification again: the same implementation, nodes,
    seed, scenario or suite, backend and timing options, paths relative to the working
    directory where they can be (where reports go and which ports are used are left
    to whoever runs it)."""
    impl = opts.impl
    if impl.startswith(MAELSTROM_PREFIX):
        head, _, binary = impl.removeprefix(MAELSTROM_PREFIX).rpartition(":")
        impl = MAELSTROM_PREFIX + (f"{head}:" if head else "") + relative_path(binary)
    elif impl not in NAMED_MANIFESTS:
        impl = relative_path(impl)
    parts = ["gossipcert", "certify", "--impl", impl, "--nodes", str(opts.nodes),
             "--seed", str(seed)]
    if opts.quick:
        parts.append("--quick")
    elif opts.scenario is not None:
        parts += ["--scenario", relative_path(opts.scenario) if opts.scenario.endswith(
            (".yaml", ".yml")) else opts.scenario]
    if opts.backend != "process":
        parts += ["--backend", opts.backend]
    if opts.profile != DEFAULT_PROFILE:
        parts += ["--profile", opts.profile]
    if opts.clock_skew_ms != DEFAULT_CLOCK_SKEW_MS:
        parts += ["--clock-skew-ms", f"{opts.clock_skew_ms:g}"]
    if opts.quiet_s is not None:
        parts += ["--quiet-s", f"{opts.quiet_s:g}"]
    if opts.partition_s is not None:
        parts += ["--partition-s", f"{opts.partition_s:g}"]
    return shlex.join(parts)


def _prepare(opts: CertifyOptions, declared: Manifest, scenario: Scenario,
             planned: PlannedRun, seed: int, judged: JudgedTiming,
             planes: Sequence[PlaneOffer]) -> tuple[Manifest, Fit]:
    """One scenario's manifest (the scenario may pick the policy) and operations, fitted
    to this machine's fault planes (:func:`harness.run.preflight.fit`), before any start."""
    manifest = run_manifest(declared, scenario)
    if planned.policy is not None:
        manifest = with_run_options(manifest, conflict_policy=planned.policy,
                                    encryption=scenario.encryption)
    ops = schedule(scenario, node_ids(opts.nodes), seed, judged.timing, quiet_s=opts.quiet_s,
                   partition_s=opts.partition_s)
    return manifest, fit(ops, planes)


def _run_scenario(
    opts: CertifyOptions,
    manifest: Manifest,
    scenario: Scenario,
    fitted: Fit,
    seed: int,
    run_dir: Path,
    catalogue: Sequence[Requirement],
    progress: Callable[[str], None],
    policies: Sequence[str],
    mode: str,
    judged: JudgedTiming,
) -> ScenarioRun:
    """Run one scenario on a fresh cluster and write its reports into ``run_dir``; one
    this machine cannot run is skipped, its requirements untested with the reason."""
    nodes = node_ids(opts.nodes)
    notes = {"preflight": {"notes": list(fitted.notes)}} if fitted.notes else {}
    spec = RunSpec(backend=opts.backend, nodes=tuple(nodes), seed=seed, timing=judged.timing,
                   ops=fitted.ops, scenario=scenario.name, catalogue=tuple(catalogue),
                   manifest=manifest, timing_profile=judged.describe(),
                   policies=tuple(policies), run_dir=run_dir, clock_skew_ms=opts.clock_skew_ms,
                   base_port=opts.base_port, toxiproxy_url=opts.toxiproxy_url,
                   meta_extra=notes)
    command = {"command": certify_command(opts, seed)}
    if fitted.skipped is not None:
        record = skipped_run(spec, fitted.skipped)
        report = publish(record, run_dir, mode=mode,
                         run_extra={"skipped": fitted.skipped, **command})
        progress(f"scenario {scenario.name}: SKIPPED ({fitted.skipped})")
        return ScenarioRun(record, run_dir, report)
    progress(f"scenario {scenario.name}: {len(fitted.ops)} operations; starting {opts.nodes} "
             f"nodes of {manifest.name} ({opts.backend} backend, {manifest.conflict_policy}), "
             f"seed {seed}, run dir {run_dir}")
    record = execute(spec, progress=progress)
    report = publish(record, run_dir, mode=mode, run_extra=command)
    if record.failure is not None:
        progress(f"scenario {scenario.name}: ERROR (the harness failed; partial report)")
    elif mode == "suite":
        counts = judged_counts(record.verdicts)
        progress(f"scenario {scenario.name}: {counts['pass']} passed, {counts['fail']} failed, "
                 f"{counts['error']} not judged")
    else:
        progress(f"scenario {scenario.name}: {report['verdict'].upper()}")
    return ScenarioRun(record, run_dir, report)
