"""Bytes of a Merkle anti-entropy exchange against a full-state transfer.

    python benchmarks/merkle_sync.py --keys 100000 --diffs 1 10 100

Builds two key/value stores of K keys that differ in d keys (a third changed on one
side, a third only on the other, a third deleted on one side), runs one reconciliation
in memory with `reference_node.core.state.reconcile` (every hop encoded exactly as the
runtime frames it) and prints one Markdown table row per d. Full state = both sides
sending every key state in a push-pull, as an exchange without Merkle trees would.
"""

from __future__ import annotations

import argparse
import time

from gossipcert.reference_node.core.hlc import Timestamp
from gossipcert.reference_node.core.messages import Sibling
from gossipcert.reference_node.core.state import StateStore, reconcile


def build(keys: int, diffs: int, depth: int) -> tuple[StateStore, StateStore]:
    a, b = StateStore(depth=depth), StateStore(depth=depth)
    for i in range(keys):
        sibling = Sibling("writer-1", Timestamp(1_700_000_000_000 + i, 0), {"n": i, "v": "x" * 8})
        a.kv.write(f"user:{i:08}", sibling)
        b.kv.write(f"user:{i:08}", sibling)
    for j in range(diffs):
        ts = Timestamp(1_800_000_000_000 + j, 0)
        key = f"user:{(j * 7919) % keys:08}"
        if j % 3 == 0:
            a.kv.write(key, Sibling("writer-2", ts, {"n": -j}))
        elif j % 3 == 1:
            b.kv.write(f"new:{j:08}", Sibling("writer-3", ts, {"n": j}))
        else:
            a.kv.write(key, Sibling("writer-2", ts, None, deleted=True))
    return a, b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--diffs", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--depth", type=int, default=4)
    args = parser.parse_args()
    print("| K | d | messages | hops | Merkle bytes | full-state bytes | ratio | sync s |")
    print("|---|---|---|---|---|---|---|---|")
    for diffs in args.diffs:
        a, b = build(args.keys, diffs, args.depth)
        start = time.perf_counter()
        cost = reconcile(a, b)
        took = time.perf_counter() - start
        assert cost.converged and a.kv.digest() == b.kv.digest()
        print(
            f"| {args.keys:,} | {diffs} | {cost.messages} | {cost.hops} | {cost.bytes:,} "
            f"| {cost.full_state_bytes:,} | {cost.ratio:.3%} | {took:.1f} |"
        )


if __name__ == "__main__":
    main()
