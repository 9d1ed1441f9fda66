"""Seeded defect: a g-counter merge adds the per-node counts instead of taking their
maximum, so every state that arrives twice (gossip and anti-entropy deliver states again
and again) is counted twice, and the replicas' values run away from the increments."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from unittest.mock import patch

from gossipcert.reference_node.core.crdt import GCounter


def _summed(self: GCounter, other: GCounter) -> GCounter:
    merged = dict(self.counts)
    for node, count in other.counts:
        merged[node] = merged.get(node, 0) + count
    return GCounter(tuple(sorted(merged.items())))


@contextmanager
def installed() -> Iterator[None]:
    with patch.object(GCounter, "merge", _summed):
        yield
