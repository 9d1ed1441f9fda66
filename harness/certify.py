"""``gossipcert certify``: one scenario run, from manifest to report.

manifest + scenario -> schedule (from the seed) -> cluster up -> the schedule's workload
and faults -> history -> verdicts per requirement -> report.json / report.md. The default
scenario (``chaos/scenarios/default.yaml``) is join, quiet, broadcast, writes, kill -9,
partition and heal; ``--scenario`` picks another (see :mod:`harness.scenario`).
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import harness
from harness.checkers import run_checks
from harness.cluster import Cluster
from harness.errors import EXIT_FAIL, EXIT_PASS, GossipcertError
from harness.history import History
from harness.manifest import Manifest, load_manifest
from harness.scenario import (
    RunOptions,
    ScenarioRunner,
    load_scenario,
    run_manifest,
    schedule,
)
from harness.verdict import load_catalogue
from reports.json_report import write_json_report
from reports.markdown import write_markdown_report
from reports.render import write_reports


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
    scenario: str = "default"
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


def certify(opts: CertifyOptions) -> CertifyResult:
    if opts.nodes < 3:
        raise GossipcertError("--nodes must be at least 3 (a kill and a partition need them)")
    if opts.backend not in ("process", "docker"):
        raise GossipcertError(f"unknown backend {opts.backend!r} (available: process, docker)")
    manifest = load_manifest(opts.impl)
    manifest.launch_for(opts.backend)  # a missing launch section is bad input, before any start
    scenario = load_scenario(opts.scenario)
    manifest = run_manifest(manifest, scenario)  # the scenario may pick the policy
    seed = opts.seed if opts.seed is not None else random.SystemRandom().randrange(1, 10**6)
    node_ids = [f"n{i + 1}" for i in range(opts.nodes)]
    actions = schedule(scenario, node_ids, seed, manifest.timing)
    report_dir = opts.report_dir or default_report_dir(manifest, seed)
    report_dir.mkdir(parents=True, exist_ok=True)
    catalogue = load_catalogue()
    progress = _Progress(opts.progress)
    history = History(report_dir / "history.jsonl")
    history.append("meta", "run", args={
        "implementation": manifest.name,
        "seed": seed,
        "nodes": node_ids,
        "timing": manifest.timing,
        "conflict_policy": manifest.conflict_policy,
        "capabilities": manifest.capabilities,
        "backend": opts.backend,
        "scenario": scenario.name,
    })
    (report_dir / "schedule.json").write_text(
        json.dumps({"scenario": scenario.name, "seed": seed, "actions": actions}, indent=1)
    )
    started = time.time()
    progress(f"scenario {scenario.name}: {len(actions)} steps; starting {opts.nodes} nodes "
             f"of {manifest.name} ({opts.backend} backend), seed {seed}, run dir {report_dir}")
    cluster = Cluster(manifest, opts.nodes, report_dir, backend=opts.backend, seed=seed,
                      base_port=opts.base_port, toxiproxy_url=opts.toxiproxy_url,
                      history=history, progress=progress)
    with cluster:
        progress(f"cluster up: {opts.nodes} nodes ready")
        ScenarioRunner(cluster, catalogue, actions, RunOptions(
            quiet_s=opts.quiet_s, partition_s=opts.partition_s, progress=progress,
        )).run()
    wall_s = time.time() - started
    progress(f"cluster stopped after {wall_s:.1f} s; checking requirements")
    entries = history.entries()
    verdicts = run_checks(entries, catalogue, progress=progress)
    faults = [
        {"time_ms": e.time_ms, "op": e.op, "node": e.node, "args": e.args}
        for e in entries if e.type == "fault"
    ]
    run_info = {
        "nodes": cluster.node_ids,
        "backend": opts.backend,
        "timing": manifest.timing,
        "conflict_policy": manifest.conflict_policy,
        "wall_time_s": round(wall_s, 2),
        "gossipcert_version": harness.__version__,
        "history": "history.jsonl",
        "manifest": str(manifest.path),
        "scenario": scenario.name,
        "schedule": "schedule.json",
    }
    report = write_json_report(report_dir / "report.json", implementation=manifest.name,
                               seed=seed, verdicts=verdicts, faults=faults, run=run_info)
    write_markdown_report(report_dir / "report.md", report)
    write_reports(report_dir, report, entries)
    code = EXIT_PASS if report["verdict"] == "pass" else EXIT_FAIL
    return CertifyResult(code, report_dir, report)


def print_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
