"""How long the full requirement catalogue takes to check a history, by history size.

Histories come from the simulated driver (harness.drivers.simulated): N nodes, a workload of
puts and broadcasts with time passing, a crash, a partition and a heal, then a settle.
Checkers index a history once and do work linear in what they check, so the time per
entry should stay flat as histories grow.

    .venv/bin/python benchmarks/checkers_scale.py
"""

from __future__ import annotations

import time

from gossipcert.harness.judging.verdict import load_catalogue
from gossipcert.harness.manifest import load_manifest
from gossipcert.harness.run.pipeline import simulate
from gossipcert.harness.workloads import operations as o
from gossipcert.harness.workloads.broadcast import Broadcast
from gossipcert.harness.workloads.capabilities import run_checks
from gossipcert.harness.workloads.faults import Heal, Kill, Partition
from gossipcert.harness.workloads.kv import Put
from gossipcert.harness.workloads.operations import Op
from gossipcert.harness.workloads.settle import settle_ms, settle_ops


def history(nodes: int, rounds: int) -> list:
    timing = load_manifest("reference").timing
    ids = [f"n{i}" for i in range(1, nodes + 1)]
    timing = load_manifest("reference").timing
    ops: list[Op] = []
    for r in range(rounds):
        ops += [Put(node, f"k{(r + i) % 20}", f"{node}-{r}") for i, node in enumerate(ids)]
        ops += [Broadcast(ids[r % nodes], f"b{r}"), o.Wait(100, observe=False)]
        if r % 10 == 0:
            ops += [o.ReadRound("members"), o.ReadRound("kv"), o.ReadRound("broadcasts")]
    ops += [Kill(ids[-1]), Partition((tuple(ids[: nodes // 2]), tuple(ids[nodes // 2 : -1]))),
            o.Wait(4000, observe=False), Heal(),
            *settle_ops(settle_ms(timing, nodes, load_catalogue()))]
    _, entries = simulate(ops, ids, timing=timing)
    return entries


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
