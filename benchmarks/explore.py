"""What ``gossipcert explore`` costs and finds: examples per minute on real processes,
time to find and shrink seeded defects, and the same search in simulation beside it.

    python benchmarks/explore.py                       # everything, 5 nodes, seeds 1-2
    python benchmarks/explore.py --rate-s 120 --seeds 1 2 3 --defects acks_unkept_writes
    python benchmarks/explore.py --skip-real           # the simulation column only

Run it under ``flock /tmp/gossipcert-cpu.lock``: the real searches start node processes.

1. Examples per minute: the reference node explored for ``--rate-s`` seconds on
   ``--nodes`` processes (one cluster, reused), no violation expected.
2. For each defect in ``--defects`` (folders of ``tests/impls/`` whose ``defect.py``
   patches the reference core) and each seed: explore on real processes with a budget of
   ``--budget-s``, and the same search (same strategy, same seed, same space of
   operations) in the simulator of the reference core with that defect installed. For
   each: seconds and examples to the first violation, seconds until shrinking ended,
   shrink steps, the rerun on which the failure kept failed again, and the size of the
   smallest failing sequence (all operations, and the client calls and faults among
   them).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from gossipcert.harness.judging.verdict import load_catalogue
from gossipcert.harness.manifest import load_manifest
from gossipcert.harness.profiles import judged_timing
from gossipcert.harness.run.explore import (
    ExploreOptions,
    SimulationRunner,
    explore,
    space_for,
)
from gossipcert.harness.run.replay import defect_core
from gossipcert.harness.run.search import Search, SearchOutcome
from gossipcert.harness.workloads.capabilities import operation_sequences
from gossipcert.harness.workloads.operations import Op

IMPLS = Path(__file__).resolve().parent.parent / "tests" / "impls"
_QUIET = ("await-members", "await-convergence", "await-digests", "await-delivery",
          "await-crdt", "wait", "read", "note", "phase")


def active(ops: list[Op]) -> int:
    """Client calls and faults: what a person reads in a failing sequence."""
    return sum(1 for op in ops if op.kind not in _QUIET)


def confirmed(outcome: SearchOutcome) -> str:
    """How the failure kept was confirmed: reruns until it failed again (real clusters)."""
    best = outcome.best
    if best is None or not outcome.confirm_runs:
        return "not needed"
    said = f"rerun {best.reruns}" if best.failed_again else "never failed again"
    return (f"{said} (confirm runs: {outcome.confirm_runs}, failures set aside: "
            f"{outcome.unconfirmed})")


def row(where: str, defect: str, seed: int, outcome: SearchOutcome, budget_s: float) -> str:
    best, first = outcome.best, outcome.first
    if best is None or first is None:
        return (f"| {defect} | {seed} | {where} | not found in {budget_s:.0f} s "
                f"({outcome.runs} examples) | | | | | |")
    found = f"{first.found_after_s:.1f} s, {first.run.number} examples"
    return (f"| {defect} | {seed} | {where} | {found} | {outcome.elapsed_s:.1f} s"
            f"{' (budget)' if outcome.stop == 'budget' else ''} | {outcome.shrink_steps} | "
            f"{confirmed(outcome)} | {len(best.drawn)} ({active(best.drawn)}) | "
            f"{', '.join(v.id for v in best.failed)} |")


def rate(nodes: int, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        result = explore(ExploreOptions(impl="reference", nodes=nodes, budget_s=seconds,
                                        seed=1, report_dir=Path(tmp) / "rate"))
    outcome = result.outcome
    per_minute = outcome.runs / outcome.elapsed_s * 60
    print(f"Reference node, {nodes} processes, {outcome.elapsed_s:.0f} s: {outcome.runs} "
          f"examples ({per_minute:.1f} per minute, {outcome.duplicates} repeats judged "
          f"without a run), {outcome.errors} not run to the end; "
          f"{'no violation' if outcome.best is None else 'VIOLATION: ' + result.summary}")


def simulated(defect: str, nodes: int, seed: int, budget_s: float) -> SearchOutcome:
    manifest = load_manifest(str(IMPLS / defect))
    judged = judged_timing(manifest.declared_timing)
    node_ids = [f"n{i + 1}" for i in range(nodes)]
    space = space_for(manifest, node_ids, judged)
    runner = SimulationRunner(nodes, timing=judged.timing, policy=manifest.conflict_policy,
                              core=defect_core(manifest), catalogue=load_catalogue())
    # The simulator is deterministic: a failing sequence fails again, no rerun needed.
    return Search(runner, budget_s, confirm=0).run(operation_sequences(space), seed)


def real(defect: str, nodes: int, seed: int, budget_s: float) -> SearchOutcome:
    with tempfile.TemporaryDirectory() as tmp:
        result = explore(ExploreOptions(impl=str(IMPLS / defect), nodes=nodes,
                                        budget_s=budget_s, seed=seed,
                                        report_dir=Path(tmp) / defect))
    return result.outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--rate-s", type=float, default=180.0,
                        help="how long to explore the reference node for the rate")
    parser.add_argument("--budget-s", type=float, default=300.0,
                        help="budget of each search of a defect")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--defects", nargs="+",
                        default=["acks_unkept_writes", "lww_oldest_wins"])
    parser.add_argument("--skip-real", action="store_true",
                        help="only the simulation column (no node process is started)")
    args = parser.parse_args()
    started = time.perf_counter()
    if not args.skip_real:
        rate(args.nodes, args.rate_s)
        print()
    print("| defect | seed | where | first violation | search ended after | shrink steps "
          "| failed again on | smallest sequence: ops (calls and faults) | failed |")
    print("|---|---|---|---|---|---|---|---|---|")
    firsts: dict[str, list[float]] = {}
    for defect in args.defects:
        for seed in args.seeds:
            runs = [("simulation", simulated)]
            if not args.skip_real:
                runs.insert(0, ("real processes", real))
            for where, search in runs:
                outcome = search(defect, args.nodes, seed, args.budget_s)
                print(row(where, defect, seed, outcome, args.budget_s), flush=True)
                if outcome.first is not None:
                    firsts.setdefault(where, []).append(outcome.first.found_after_s)
    for where, times in firsts.items():
        print(f"\nmedian time to the first violation, {where}: {statistics.median(times):.1f} s")
    print(f"\nbenchmark wall time {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
