"""The simulated network: latency with jitter, random loss, partitions and one-way cuts.

All randomness comes from the one generator handed in, so a run replays from its seed.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Literal

JitterKind = Literal["uniform", "exponential", "normal"]


class NetworkModel:
    """Decides the fate of each message: its delay in ms, or None when it is lost.

    A partition is a labelling of nodes into groups (a link between different groups
    is cut, both ways), which describes the cut links of a 10,000-node split without
    listing 5 * 10^7 pairs; `cut(a, b)` adds single directed cuts on top.
    """

    def __init__(
        self,
        rng: random.Random,
        *,
        latency_ms: float = 10.0,
        jitter_ms: float = 0.0,
        jitter: JitterKind = "uniform",
        loss: float = 0.0,
    ) -> None:
        if latency_ms < 0 or jitter_ms < 0:
            raise ValueError("latency_ms and jitter_ms must not be negative")
        if not 0.0 <= loss < 1.0:
            raise ValueError(f"loss must be in [0, 1), got {loss}")
        if jitter not in ("uniform", "exponential", "normal"):
            raise ValueError(f"unknown jitter distribution {jitter!r}")
        self.rng = rng
        self.latency_ms = latency_ms
        self.jitter_ms = jitter_ms
        self.jitter: JitterKind = jitter
        self.loss = loss
        self._group: dict[int, int] = {}
        self._cuts: set[tuple[int, int]] = set()

    # ---- faults ------------------------------------------------------------------------

    def partition(self, groups: Iterable[Iterable[int]]) -> None:
        """Cut every link between different groups; nodes in no group form one more
        group of their own. Replaces any earlier partition (one-way cuts stay)."""
        labels: dict[int, int] = {}
        for label, group in enumerate(groups, start=1):
            for node in group:
                if node in labels:
                    raise ValueError(f"node {node} is in two partition groups")
                labels[node] = label
        self._group = labels

    def cut(self, src: int, dst: int) -> None:
        """Drop everything sent from `src` to `dst` (one direction only)."""
        self._cuts.add((src, dst))

    def heal(self) -> None:
        """Remove the partition and every one-way cut."""
        self._group = {}
        self._cuts = set()

    @property
    def faulted(self) -> bool:
        return bool(self._group or self._cuts)

    def blocked(self, src: int, dst: int) -> bool:
        if self._group and self._group.get(src, 0) != self._group.get(dst, 0):
            return True
        return (src, dst) in self._cuts

    # ---- per message -------------------------------------------------------------------

    def delay_ms(self) -> int | None:
        """The delay of one message, or None when loss drops it. Always at least 1 ms,
        so a reply can never arrive at the instant its request was sent."""
        rng = self.rng
        if self.loss and rng.random() < self.loss:
            return None
        delay = self.latency_ms
        if self.jitter_ms:
            if self.jitter == "uniform":
                delay += rng.uniform(0.0, self.jitter_ms)
            elif self.jitter == "exponential":
                delay += rng.expovariate(1.0 / self.jitter_ms)
            else:
                delay += abs(rng.gauss(0.0, self.jitter_ms))
        return max(1, round(delay))
