"""Rounds for one broadcast to reach all n nodes, per dissemination mode, with and
without loss, against the theory (docs/protocol-notes.md): the push lower bound
`ceil(log_(1+f) n)` and Karp et al.'s push-pull `log3 n + ln ln n`.

Runs in the discrete-event simulator with probing, push-pull state exchange and reaping
switched off (`gossip_only`), so rounds and messages measure rumor dissemination alone.
Nodes start together, so their gossip rounds tick in step every `gossip_interval_ms`;
latency (10 ms) is below one round, so a round is a synchronous round of the theory.

    .venv/bin/python benchmarks/dissemination.py --sizes 100,1000 --seeds 20
    .venv/bin/python benchmarks/dissemination.py --sizes 10000 --seeds 1 --trials 3
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import asdict, dataclass

from gossipcert.reference_node.sim import Simulation, gossip_only

MODES = ("push", "pull", "push-pull")
FANOUT = 3
INTERVAL_MS = 200


@dataclass
class Trial:
    n: int
    mode: str
    loss: float
    seed: int
    rounds: int | None  # None: not every node was reached within the limit
    msgs_per_node_to_all: float
    msgs_per_node_to_quiet: float
    wall_s: float


def percentile(values: list[int], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return float(ordered[rank - 1])


def run_seed(n: int, mode: str, loss: float, seed: int, trials: int) -> list[Trial]:
    """One settled cluster, `trials` broadcasts one after another from random origins."""
    sim = Simulation(n, gossip_only(mode=mode, fanout=FANOUT), seed, latency_ms=10, loss=loss)
    sim.bootstrap()
    sim.run_until_quiet()  # every node's start-up announcement drains first
    out: list[Trial] = []
    for trial in range(trials):
        sent_before = sum(sim.sent.values())
        origin = sim.rng.choice(sim.ids)
        broadcast_id = f"b{trial}"
        start = sim.now_ms
        first_round = math.ceil(start / INTERVAL_MS) * INTERVAL_MS
        wall = time.perf_counter()
        sim.broadcast(origin, broadcast_id)
        reached = sim.run_until_delivered(broadcast_id, 60_000)
        wall_s = time.perf_counter() - wall
        to_all = sum(sim.sent.values()) - sent_before
        sim.run_until_quiet()
        to_quiet = sum(sim.sent.values()) - sent_before
        rounds = None
        if reached:
            last = max(sim.delivered[broadcast_id].values())
            rounds = max(0, math.ceil((last - first_round) / INTERVAL_MS))
        out.append(Trial(n, mode, loss, seed, rounds, to_all / n, to_quiet / n, wall_s))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--losses", default="0,0.1")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--trials", type=int, default=1, help="broadcasts per seed")
    parser.add_argument("--json", help="also write every trial here")
    args = parser.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
        losses = [float(s) for s in args.losses.split(",")]
    except ValueError:
        print("error: --sizes takes integers and --losses numbers, comma separated")
        return 2
    modes = args.modes.split(",")
    if any(m not in MODES for m in modes):
        print(f"error: --modes must be among {', '.join(MODES)}")
        return 2
    trials: list[Trial] = []
    print(
        "| n | mode | loss | samples | p50 rounds | p99 rounds | ceil(log4 n) | "
        "log3 n + ln ln n | p99 / Karp | msgs/node to all | msgs/node to quiet | "
        "wall s / dissemination |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n in sizes:
        lower = math.ceil(math.log(n, 1 + FANOUT))
        karp = math.log(n, 3) + math.log(math.log(n))
        for loss in losses:
            for mode in modes:
                batch: list[Trial] = []
                for seed in range(1, args.seeds + 1):
                    batch += run_seed(n, mode, loss, seed, args.trials)
                trials += batch
                reached = [t.rounds for t in batch if t.rounds is not None]
                missed = len(batch) - len(reached)
                p50 = percentile(reached, 50) if reached else math.nan
                p99 = percentile(reached, 99) if reached else math.nan
                note = f" ({missed} not all reached)" if missed else ""
                print(
                    f"| {n:,} | {mode} | {loss:.0%} | {len(batch)}{note} | {p50:.0f} | "
                    f"{p99:.0f} | {lower} | {karp:.2f} | {p99 / karp:.2f} | "
                    f"{statistics.mean(t.msgs_per_node_to_all for t in batch):.1f} | "
                    f"{statistics.mean(t.msgs_per_node_to_quiet for t in batch):.1f} | "
                    f"{statistics.median(t.wall_s for t in batch):.2f} |",
                    flush=True,
                )
    if args.json:
        with open(args.json, "w") as out:
            json.dump([asdict(t) for t in trials], out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
