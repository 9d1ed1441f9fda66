"""Lifeguard against plain SWIM suspicion, side by side on the simulator.

Two measures, each over the same seeds with Lifeguard on and off:

- false positives: one member whose outbound links all drop for 10 s (a starved or
  half-broken node); how many healthy members it declares dead meanwhile;
- true detection: one member crashes; ms until its first `dead` anywhere and until every
  live member marks it dead.

"Off" is the v1 behaviour: no awareness (multiplier 1) and max = min (no confirmations
needed), so the suspicion timer is always `min`.

    .venv/bin/python benchmarks/lifeguard.py --seeds 20 --nodes 20
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

from gossipcert.harness.manifest import load_manifest
from gossipcert.reference_node.core import Status
from gossipcert.reference_node.core.events import Event, MemberEvent
from gossipcert.reference_node.sim.simulation import Simulation

# The reference node's declared timing (its manifest), the one its tests run at.
TIMING: dict[str, Any] = dict(load_manifest("reference").timing)
FAULT_MS = 10_000
OFF: dict[str, Any] = {"awareness_max_multiplier": 1, "suspicion_max_timeout_mult": 1}


def false_positives(n: int, seed: int, lifeguard: bool) -> int:
    sim = Simulation(n, {**TIMING, **({} if lifeguard else OFF)}, seed=seed)
    sim.bootstrap()
    sim.run_for(2_000)
    slow = sim.ids[0]
    for other in sim.ids[1:]:
        sim.cut(slow, other)
    sim.run_for(FAULT_MS)
    return sum(1 for member in sim.ids[1:] if sim.status_seen(slow, member) in (Status.DEAD, None))


def detection(n: int, seed: int, lifeguard: bool) -> tuple[int, int]:
    sim = Simulation(n, {**TIMING, **({} if lifeguard else OFF)}, seed=seed)
    sim.bootstrap()
    sim.run_for(2_000)
    victim = sim.ids[-1]
    first_dead: list[int] = []

    def on_event(at_ms: int, observer: str, event: Event) -> None:
        if first_dead or not isinstance(event, MemberEvent):
            return
        if event.member == victim and event.status is Status.DEAD:
            first_dead.append(at_ms)

    sim.on_event(on_event)
    crashed_at = sim.now_ms
    sim.crash(victim)
    assert sim.run_until_true(lambda: sim.all_see(victim, Status.DEAD), 60_000)
    return first_dead[0] - crashed_at, sim.now_ms - crashed_at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--nodes", type=int, default=20)
    args = parser.parse_args()
    seeds = range(1, args.seeds + 1)
    print(f"n = {args.nodes}, {args.seeds} seeds, probe 300 ms, suspicion mult 4")
    print(
        "| lifeguard | false dead (mean of n-1) | first dead p50 ms | all dead p50 ms |"
        " all dead max ms |"
    )
    print("|---|---|---|---|---|")
    for lifeguard in (False, True):
        fps = [false_positives(args.nodes, s, lifeguard) for s in seeds]
        times = [detection(args.nodes, s, lifeguard) for s in seeds]
        firsts = [t[0] for t in times]
        alls = [t[1] for t in times]
        print(
            f"| {'on' if lifeguard else 'off'} | {statistics.mean(fps):.1f} | "
            f"{statistics.median(firsts):.0f} | {statistics.median(alls):.0f} | {max(alls)} |"
        )


if __name__ == "__main__":
    main()
