"""Where the time goes as the cluster grows: certify the reference node on local processes
at several sizes and split the CPU between the harness, the link plane and the nodes.

    flock /tmp/gossipcert-cpu.lock .venv/bin/python benchmarks/scale.py \
        --sizes 10,25,50,100 [--quick] [--seed 1] [--out build/scale.json]

For each size, one ``gossipcert certify --impl reference --nodes N`` (the whole suite,
or the default scenario with ``--quick``) runs as a child. Once a second this script
reads the CPU time of every process under it from ``/proc``: the certify process itself
(the harness), the link plane server it started, and everything else it started (the
nodes); processes that end keep their last reading. Printed per size: wall time, the
exit code and verdict, CPU seconds and share of each part, the host's mean busy share
over the run, how long the host was saturated (from the reports' ``run.host_load``),
and the first requirement that failed or could not be judged.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from gossipcert.harness.drivers.hostload import HostBusy, cpu_by_component

COMPONENTS = ("harness", "link-plane", "nodes")


def _reports(report_dir: Path) -> list[dict[str, Any]]:
    """The scenario reports of a run (a suite's, or the single one)."""
    top = report_dir / "report.json"
    if not top.exists():
        return []
    report = json.loads(top.read_text())
    runs = report.get("runs")
    if not runs:
        return [report]
    out = []
    for run in runs:
        path = report_dir / run["dir"] / "report.json"
        if path.exists():
            out.append(json.loads(path.read_text()))
    return out


def first_problem(report: dict[str, Any]) -> str:
    if report.get("harness_error"):
        return f"harness error: {report['harness_error']['message'][:90]}"
    for status in ("fail", "error"):
        for req in report.get("requirements", []):
            if req["status"] == status and req["level"] == "MUST":
                return f"{req['id']} ({status})"
    return ""


def run_size(nodes: int, seed: int, quick: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        report_dir = Path(tmp) / "run"
        argv = [sys.executable, "-m", "gossipcert.harness", "certify", "--impl",
                "reference", "--nodes", str(nodes), "--seed", str(seed), "--report-dir",
                str(report_dir)] + (["--quick"] if quick else [])
        busy = HostBusy()
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
        last: dict[int, tuple[str, float]] = {}
        while proc.poll() is None:
            last.update(cpu_by_component(proc.pid))
            time.sleep(1.0)
        wall = time.perf_counter() - t0
        host_busy = busy.share()
        stderr = proc.stderr.read() if proc.stderr is not None else ""
        cpu = {c: 0.0 for c in COMPONENTS}
        for component, seconds in last.values():
            cpu[component] += seconds
        reports = _reports(report_dir)
        top = json.loads((report_dir / "report.json").read_text()) if reports else {}
        saturated = sum(r.get("run", {}).get("host_load", {}).get("saturated_s", 0.0)
                        for r in reports)
        errors = [line for line in stderr.splitlines() if line.startswith("gossipcert: ")]
        return {
            "nodes": nodes,
            "exit": proc.returncode,
            "verdict": top.get("verdict", "-"),
            "wall_s": round(wall, 1),
            "cpu_s": {c: round(v, 1) for c, v in cpu.items()},
            "host_busy": round(host_busy, 3),
            "saturated_s": round(saturated, 1),
            "first_problem": first_problem(top) if top else (errors[-1] if errors else ""),
            "traceback": "Traceback" in stderr,
        }


def row(result: dict[str, Any]) -> str:
    cpu = result["cpu_s"]
    total = sum(cpu.values()) or 1.0
    shares = " | ".join(f"{cpu[c]:.0f} ({cpu[c] / total:.0%})" for c in COMPONENTS)
    return (f"| {result['nodes']} | {result['verdict']} | {result['exit']} | "
            f"{result['wall_s']:.0f} | {shares} | {result['host_busy']:.0%} | "
            f"{result['saturated_s']:.0f} | {result['first_problem']} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,25,50,100")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="the default scenario alone")
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON")
    args = parser.parse_args()
    print(f"cpus: {os.cpu_count()}; {'default scenario' if args.quick else 'whole suite'}, "
          f"seed {args.seed}", flush=True)
    print("| nodes | verdict | exit | wall s | harness CPU s | link plane CPU s | nodes CPU s "
          "| host busy | saturated s | first failing or unjudged MUST |")
    print("|---|---|---|---|---|---|---|---|---|---|", flush=True)
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        result = run_size(size, args.seed, args.quick)
        results.append(result)
        print(row(result), flush=True)
        if result["traceback"]:
            print(f"  (size {size} ended with a traceback)", flush=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
