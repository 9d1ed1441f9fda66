"""How often the verdict holds: certify one implementation N times in a row and compare.

    flock /tmp/gossipcert-cpu.lock .venv/bin/python benchmarks/specificity.py \
        --impl reference|PATH [--runs 20] [--quick] [--nodes 5] [--out build/spec.json]

Runs ``gossipcert certify --impl IMPL --nodes N --seed S`` for seeds 1..RUNS back to back
(the whole suite by default, the default scenario alone with ``--quick``), each as a
child with a fresh report directory. A verdict that changes from one seed to the next on
a correct implementation is a false FAIL waiting to happen, so this is the measurement
behind the claim that the reference node and the independent heartbeat node pass every
time; the tests run each suite once.

Printed: one Markdown row per run (seed, exit, verdict, wall time, the requirements not
passed), then the summary: the verdicts seen, whether every run gave the same status to
every requirement, each requirement that ever failed, went unjudged (error) or stayed
untested with the seeds where it did, the wall time per run (min, median, max), and
whether any run left a process behind. Exit 0 when every run gave the same verdicts,
1 otherwise, 2 when certify refuses the input (its one line is printed).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from gossipcert.harness.drivers.sweep import orphaned_processes

NOT_PASSED = ("fail", "error", "untested")


def certify_once(impl: str, seed: int, nodes: int, quick: bool) -> dict[str, Any]:
    """One certify run as a child; what it concluded and how long it took."""
    with tempfile.TemporaryDirectory(prefix="gossipcert-spec-") as tmp:
        report_dir = Path(tmp) / "run"
        argv = [sys.executable, "-m", "gossipcert.harness", "certify", "--impl", impl,
                "--nodes", str(nodes), "--seed", str(seed), "--report-dir", str(report_dir)]
        if quick:
            argv.append("--quick")
        t0 = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
        path = report_dir / "report.json"
        report = json.loads(path.read_text()) if path.exists() else {}
    last_line = next((line for line in reversed(proc.stderr.splitlines())
                      if line.startswith("gossipcert: ")), "")
    return {
        "seed": seed,
        "exit": proc.returncode,
        "verdict": report.get("verdict", "-"),
        "wall_s": round(wall, 1),
        "statuses": {r["id"]: r["status"] for r in report.get("requirements", [])},
        "levels": {r["id"]: r["level"] for r in report.get("requirements", [])},
        "message": "" if report else last_line,
        "traceback": "Traceback" in proc.stderr,
        "left_behind": len(orphaned_processes()),
    }


def row(run: dict[str, Any]) -> str:
    off = [f"{rid} ({status})" for rid, status in run["statuses"].items()
           if status in NOT_PASSED]
    note = ", ".join(off) or run["message"] or "-"
    return f"| {run['seed']} | {run['exit']} | {run['verdict']} | {run['wall_s']:.1f} | {note} |"


def summarise(runs: list[dict[str, Any]]) -> tuple[list[str], bool]:
    """The summary lines, and whether every run gave identical statuses and verdicts."""
    verdicts: dict[str, int] = defaultdict(int)
    for run in runs:
        verdicts[f"{run['verdict']} (exit {run['exit']})"] += 1
    identical = all(r["statuses"] == runs[0]["statuses"] and r["exit"] == runs[0]["exit"]
                    for r in runs)
    seeds_by: dict[tuple[str, str], list[int]] = defaultdict(list)
    for run in runs:
        for rid, status in run["statuses"].items():
            if status in NOT_PASSED:
                seeds_by[(rid, status)].append(run["seed"])
    walls = [r["wall_s"] for r in runs]
    lines = [
        f"runs: {len(runs)}; verdicts: "
        + ", ".join(f"{v} x{n}" for v, n in sorted(verdicts.items())),
        f"identical statuses of every requirement in every run: {'yes' if identical else 'no'}",
        f"wall time per run: min {min(walls):.1f} s, median {statistics.median(walls):.1f} s, "
        f"max {max(walls):.1f} s; total {sum(walls) / 60:.1f} min",
        f"processes left behind after a run: {max(r['left_behind'] for r in runs)}; "
        f"runs ending in a traceback: {sum(r['traceback'] for r in runs)}",
    ]
    if seeds_by:
        lines.append("requirements not passed in some run:")
        lines.append("")
        lines.append("| requirement | level | status | runs | seeds |")
        lines.append("|---|---|---|---|---|")
        levels: dict[str, str] = {}
        for run in runs:
            levels.update(run["levels"])
        for (rid, status), seeds in sorted(seeds_by.items()):
            shown = ", ".join(map(str, seeds)) if len(seeds) < len(runs) else "all"
            lines.append(f"| {rid} | {levels.get(rid, '?')} | {status} | "
                         f"{len(seeds)}/{len(runs)} | {shown} |")
    else:
        lines.append("requirements not passed in some run: none")
    return lines, identical


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--impl", default="reference",
                        help="reference, serf, maelstrom:BINARY or a manifest path")
    parser.add_argument("--runs", type=int, default=20, help="seeds 1..RUNS")
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="the default scenario alone")
    parser.add_argument("--out", type=Path, default=None, help="also write the runs as JSON")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    mode = "default scenario (--quick)" if args.quick else "full suite"
    print(f"{args.impl}: {mode}, {args.nodes} nodes, seeds 1..{args.runs}", flush=True)
    print("| seed | exit | verdict | wall s | requirements not passed |")
    print("|---|---|---|---|---|", flush=True)
    runs = []
    for seed in range(1, args.runs + 1):
        run = certify_once(args.impl, seed, args.nodes, args.quick)
        if run["exit"] == 2 and not run["statuses"]:  # bad input: every seed would say so
            print(f"specificity: certify refused the input: {run['message']}", file=sys.stderr)
            return 2
        runs.append(run)
        print(row(run), flush=True)
    lines, identical = summarise(runs)
    print()
    print("\n".join(lines), flush=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"impl": args.impl, "mode": mode, "runs": runs},
                                       indent=1))
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
