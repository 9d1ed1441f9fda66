"""Wall time of a certify run and the measured failure-detection time against its bound.

    python benchmarks/certify_run.py --runs 5            # the quick run (default scenario)
    python benchmarks/certify_run.py --runs 3 --suite    # the full suite

Runs ``gossipcert certify --impl reference --nodes 5 [--quick]`` RUNS times with seeds
1..RUNS and prints one Markdown table row per run plus the medians; with ``--suite``, also
the wall time of each scenario of the suite.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--suite", action="store_true", help="the full suite, not --quick")
    args = parser.parse_args()
    mode = [] if args.suite else ["--quick"]
    per_scenario: dict[str, list[float]] = {}
    rows = []
    print("| seed | verdict | wall s | FD-DETECT ms | bound ms | ratio | KV-CONVERGENCE ms | "
          "PARTITION-HEAL ms |")
    print("|---|---|---|---|---|---|---|---|")
    for seed in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory() as tmp:
            report_dir = Path(tmp) / "run"
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "gossipcert.harness", "certify", "--impl", "reference",
                 "--nodes", str(args.nodes), "--seed", str(seed), "--report-dir",
                 str(report_dir), *mode],
                capture_output=True, check=False,
            )
            wall = time.perf_counter() - t0
            report = json.loads((report_dir / "report.json").read_text())
        for run in report.get("runs") or []:
            per_scenario.setdefault(run["scenario"], []).append(run["wall_time_s"])
        by_id = {r["id"]: r for r in report["requirements"]}
        detect = by_id["FD-DETECT"]
        row = (seed, report["verdict"], wall, detect["measured"], detect["bound"],
               by_id["KV-CONVERGENCE"]["measured"], by_id["PARTITION-HEAL"]["measured"])
        rows.append(row)
        print(f"| {seed} | {row[1]} | {wall:.1f} | {row[3]:.0f} | {row[4]:.0f} | "
              f"{row[3] / row[4]:.2f} | {row[5]:.0f} | {row[6]:.0f} |", flush=True)
    med = statistics.median
    print(f"\nmedian wall {med(r[2] for r in rows):.1f} s; median detection "
          f"{med(r[3] for r in rows):.0f} ms against a bound of {rows[0][4]:.0f} ms "
          f"({med(r[3] / r[4] for r in rows):.2f} of the bound); "
          f"{sum(r[1] == 'pass' for r in rows)}/{len(rows)} runs pass")
    if per_scenario:
        print("\n| scenario | median wall s |\n|---|---|")
        for name, walls in per_scenario.items():
            print(f"| {name} | {med(walls):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
