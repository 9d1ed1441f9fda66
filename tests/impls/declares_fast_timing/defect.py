"""Seeded defect: no patch of the code at all. The manifest declares the reference timing
and hands it to the node as usual; ``node_args`` multiplies the probe, gossip and
push-pull intervals by ``SLOWDOWN`` before the real node parses them: a node whose timers
tick in the wrong unit. It is a correct gossip node in every other way, just far slower
than every bound derived from its declared timing assumes. Only the traffic the harness
relays shows it.

It has no core patch, so the simulator has nothing of it to run: it exists as real
processes only.
"""

from __future__ import annotations

SLOWDOWN = 1000
SCALED = ("--probe-interval-ms", "--gossip-interval-ms", "--push-pull-interval-ms")


def node_args(argv: list[str]) -> list[str]:
    """``argv`` with the scaled intervals ``SLOWDOWN`` times longer."""
    out = list(argv)
    for i, word in enumerate(out[:-1]):
        if word in SCALED:
            out[i + 1] = str(int(out[i + 1]) * SLOWDOWN)
    return out
