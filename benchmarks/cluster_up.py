"""Time to bring up (and tear down) an N-node reference cluster on each backend, side by side.

    python benchmarks/cluster_up.py --nodes 10 --runs 3

Each run starts a full cluster as certify does (link plane with one proxy per directed
link, every node joined and ready) and stops it. The backends alternate within one script
run so both see the same machine load. The Docker images are built first (or found in
the cache) and that time is printed apart: it is not part of bringing a cluster up.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from gossipcert.harness.drivers.cluster import Cluster
from gossipcert.harness.drivers.images import build_reference, docker_client
from gossipcert.harness.manifest import load_manifest


def one_run(backend: str, nodes: int, seed: int) -> tuple[float, float]:
    manifest = load_manifest("reference")
    with tempfile.TemporaryDirectory() as tmp:
        cluster = Cluster(manifest, nodes, Path(tmp), backend=backend, seed=seed)
        t0 = time.perf_counter()
        try:
            cluster.start()
            up = time.perf_counter() - t0
        finally:
            t1 = time.perf_counter()
            cluster.close()
            down = time.perf_counter() - t1
    return up, down


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backends", default="process,docker")
    args = parser.parse_args()
    backends = args.backends.split(",")
    if "docker" in backends:
        t0 = time.perf_counter()
        tag = build_reference(docker_client(), lambda line: None)
        print(f"image {tag} ready in {time.perf_counter() - t0:.1f} s (cached or built)")
    ups: dict[str, list[float]] = {b: [] for b in backends}
    downs: dict[str, list[float]] = {b: [] for b in backends}
    print(f"\n{args.nodes} nodes, {args.nodes * (args.nodes - 1)} proxies\n")
    print("| run | " + " | ".join(f"{b} up s | {b} down s" for b in backends) + " |")
    print("|---|" + "---|---|" * len(backends))
    for run in range(1, args.runs + 1):
        cells = []
        for backend in backends:
            up, down = one_run(backend, args.nodes, seed=run)
            ups[backend].append(up)
            downs[backend].append(down)
            cells.append(f"{up:.2f} | {down:.2f}")
        print(f"| {run} | " + " | ".join(cells) + " |", flush=True)
    medians = {b: statistics.median(ups[b]) for b in backends}
    print("| median | " + " | ".join(
        f"{medians[b]:.2f} | {statistics.median(downs[b]):.2f}" for b in backends) + " |")
    if len(backends) == 2:
        a, b = backends
        print(f"\nmedian bring-up ratio {b}/{a}: {medians[b] / medians[a]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
