"""Failure detection of one crashed node, in the simulator with the full protocol on
(memberlist LAN timing, docs/protocol-notes.md), against SWIM's `e/(e-1)` periods to first
detection and Lifeguard's suspicion timeout bounds for "every member marks it dead".

Two first-detection figures per crash, T the probe interval:
- the detecting probe's period: `ceil(s / T)` with s from the crash to the first ping
  of the crashed node, the period count of SWIM's analysis (geometric, mean e/(e-1));
- crash to the first `suspect` event, in T: s plus the probe's own period (the probe
  fails at the end of the period it started), so about one period more.

    .venv/bin/python benchmarks/detection.py --n 100 --seeds 30
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from dataclasses import dataclass

from gossipcert.reference_node.core import NodeConfig, Status
from gossipcert.reference_node.core.events import Event, MemberEvent
from gossipcert.reference_node.core.messages import Message
from gossipcert.reference_node.core.suspicion import suspicion_timeout_ms
from gossipcert.reference_node.sim import Simulation

E_RATIO = math.e / (math.e - 1)


@dataclass
class Crash:
    period_index: int  # ceil(s / T) of the first probe of the crashed node
    to_suspect: float  # crash -> first suspect, in probe periods
    suspect_to_all_dead_ms: int
    crash_to_all_dead_ms: int


def one_crash(n: int, seed: int) -> Crash | None:
    sim = Simulation(n, {}, seed, latency_ms=2, jitter_ms=3)
    sim.bootstrap()
    probe_ms = sim.nodes[0].config.probe_interval_ms
    sim.run_for(5_000 + sim.rng.randrange(probe_ms))  # crash at a random phase
    victim = sim.rng.choice(sim.ids)
    crashed_at = sim.now_ms
    first_ping: list[int] = []
    first_suspect: list[int] = []
    dead_seen: set[str] = set()

    def on_send(at_ms: int, _src: str, to_id: str | None, message: Message) -> None:
        if not first_ping and to_id == victim and message.kind == "ping":
            first_ping.append(at_ms)

    def on_event(at_ms: int, observer: str, event: Event) -> None:
        if isinstance(event, MemberEvent) and event.member == victim:
            if event.status is Status.SUSPECT and not first_suspect:
                first_suspect.append(at_ms)
            if event.status is Status.DEAD:
                dead_seen.add(observer)

    sim.on_send(on_send)
    sim.on_event(on_event)
    sim.crash(victim)
    if not sim.run_until_true(lambda: len(dead_seen) >= n - 1, 600_000):
        return None
    s = first_ping[0] - crashed_at
    return Crash(
        period_index=max(1, math.ceil(s / probe_ms)),
        to_suspect=(first_suspect[0] - crashed_at) / probe_ms,
        suspect_to_all_dead_ms=sim.now_ms - first_suspect[0],
        crash_to_all_dead_ms=sim.now_ms - crashed_at,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=30)
    args = parser.parse_args(argv)
    if args.n < 3 or args.seeds < 1:
        print("error: --n must be at least 3 and --seeds at least 1")
        return 2
    wall = time.perf_counter()
    crashes = [c for c in (one_crash(args.n, s) for s in range(1, args.seeds + 1)) if c]
    defaults = NodeConfig(node_id="x", gossip_address="x")
    low = suspicion_timeout_ms(defaults.suspicion_mult, args.n, defaults.probe_interval_ms)
    high = low * defaults.suspicion_max_timeout_mult
    period = statistics.mean(c.period_index for c in crashes)
    suspect = statistics.mean(c.to_suspect for c in crashes)
    spans = [c.suspect_to_all_dead_ms for c in crashes]
    wall_s = time.perf_counter() - wall
    print(f"n = {args.n}, crashes = {len(crashes)} of {args.seeds}, wall {wall_s:.1f} s")
    print("| figure | measured (mean) | theory | ratio |")
    print("|---|---|---|---|")
    print(
        f"| first detection, period of the detecting probe | {period:.2f} | "
        f"{E_RATIO:.2f} | {period / E_RATIO:.2f} |"
    )
    print(
        f"| first detection, crash to first suspect (periods) | {suspect:.2f} | "
        f"{E_RATIO:.2f} | {suspect / E_RATIO:.2f} |"
    )
    print(
        f"| first suspect to all dead, ms (min / mean / max) | {min(spans):,} / "
        f"{statistics.mean(spans):,.0f} / {max(spans):,} | Lifeguard min {low:,}, "
        f"max {high:,} | {statistics.mean(spans) / low:.2f} of min |"
    )
    total = [c.crash_to_all_dead_ms for c in crashes]
    print(
        f"| crash to all dead, ms (mean / max) | {statistics.mean(total):,.0f} / "
        f"{max(total):,} | | |"
    )
    return 0 if len(crashes) == args.seeds else 1


if __name__ == "__main__":
    sys.exit(main())
