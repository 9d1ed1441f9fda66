"""How long the full requirement catalogue takes to check a history, by history size.

Histories come from the in-memory cluster (harness.properties): N nodes, a workload of
puts and broadcasts with time passing, a crash, a partition and a heal, then a settle.
Checkers index a history once and do work linear in what they check, so the time per
entry should stay flat as histories grow.

    .venv/bin/python benchmarks/checkers_scale.py
"""

from __future__ import annotations

import time

from gossipcert.harness.checkers import run_checks
from gossipcert.harness.properties import SimCluster, settle_cluster, settle_ms
from gossipcert.harness.verdict import load_catalogue


def history(nodes: int, rounds: int) -> list:
    ids = [f"n{i}" for i in range(1, nodes + 1)]
    cluster = SimCluster(ids)
    cluster.start()
    for r in range(rounds):
        for i, node in enumerate(ids):
            cluster.put(node, f"k{(r + i) % 20}", f"{node}-{r}")
        cluster.broadcast(ids[r % nodes], f"b{r}")
        cluster.advance(100)
        if r % 10 == 0:
            cluster.read_round()
    cluster.crash(ids[-1])
    cluster.partition([ids[: nodes // 2], ids[nodes // 2 : -1]])
    cluster.advance(4000)
    cluster.heal()
    settle_cluster(cluster, settle_ms(cluster.timing, nodes, load_catalogue()))
    return cluster.entries()


def main() -> None:
    catalogue = load_catalogue()
    print("| nodes | rounds | entries | check time s | us per entry |")
    print("|---|---|---|---|---|")
    for nodes, rounds in ((5, 50), (5, 200), (10, 200), (20, 400)):
        entries = history(nodes, rounds)
        t0 = time.perf_counter()
        run_checks(entries, catalogue)
        took = time.perf_counter() - t0
        print(f"| {nodes} | {rounds} | {len(entries):,} | {took:.2f} | "
              f"{took / len(entries) * 1e6:.0f} |")


if __name__ == "__main__":
    main()
