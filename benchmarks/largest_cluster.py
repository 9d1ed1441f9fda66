"""The largest cluster each backend runs on this machine with the default certify run passing.

    python benchmarks/largest_cluster.py --sizes 5,8,12,16,20 --backends process,docker

For each backend, certifies the reference node at each size in turn (seed 1) and stops
at the first size that does not pass; prints a Markdown row per run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def certify(backend: str, nodes: int) -> tuple[str, float, list[str]]:
    with tempfile.TemporaryDirectory() as tmp:
        report_dir = Path(tmp) / "run"
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "gossipcert.harness", "certify", "--backend", backend,
             "--nodes", str(nodes), "--seed", "1", "--quick", "--report-dir",
             str(report_dir)],
            capture_output=True, check=False, timeout=1800,
        )
        wall = time.perf_counter() - t0
        path = report_dir / "report.json"
        if not path.exists():
            return "error", wall, []
        report = json.loads(path.read_text())
    failing = [r["id"] for r in report["requirements"] if r["status"] in ("fail", "error")]
    return report["verdict"], wall, failing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="5,8,12,16,20")
    parser.add_argument("--backends", default="process,docker")
    args = parser.parse_args()
    print("| backend | nodes | verdict | wall s | failing |")
    print("|---|---|---|---|---|")
    for backend in args.backends.split(","):
        for nodes in (int(x) for x in args.sizes.split(",")):
            verdict, wall, failing = certify(backend, nodes)
            print(f"| {backend} | {nodes} | {verdict} | {wall:.1f} | {', '.join(failing)} |",
                  flush=True)
            if verdict == "fail" or failing:  # --quick alone is INCOMPLETE at best
                break
    return 0


if __name__ == "__main__":
    sys.exit(main())
