"""The simulated network: latency with jitter, random loss, partitions and one-way cuts,
and per-directed-link latency, jitter and loss on top of them.

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

    Per-link faults stand for what the link plane puts on one proxy: a latency toxic
    (`latency_ms` +- `jitter_ms`, uniform, as Toxiproxy draws it) added to the network's
    own delay, and a loss rate drawn after the network's own.
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
        self._link_delay: dict[tuple[int, int], tuple[float, float]] = {}
        self._link_loss: dict[tuple[int, int], float] = {}

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

    def link_latency(self, src: int, dst: int, latency_ms: float, jitter_ms: float = 0.0) -> None:
        """Delay everything sent from `src` to `dst` by `latency_ms` +- `jitter_ms` more
        (replacing what this link had; zero and zero removes it)."""
        if latency_ms < 0 or jitter_ms < 0:
            raise ValueError("latency_ms and jitter_ms must not be negative")
        if latency_ms or jitter_ms:
            self._link_delay[(src, dst)] = (latency_ms, jitter_ms)
        else:
            self._link_delay.pop((src, dst), None)

    def link_loss(self, src: int, dst: int, loss: float) -> None:
        """Lose each message from `src` to `dst` with probability `loss` (on top of the
        network's own loss; 1 loses all, 0 removes it)."""
        if not 0.0 <= loss <= 1.0:
            raise ValueError(f"loss must be in [0, 1], got {loss}")
        if loss:
            self._link_loss[(src, dst)] = loss
        else:
            self._link_loss.pop((src, dst), None)

    def clear_links(self) -> None:
        """Remove every per-link latency and loss (partitions and cuts stay)."""
        self._link_delay = {}
        self._link_loss = {}

    def heal(self) -> None:
        """Remove the partition, every one-way cut and every per-link latency and loss."""
        self._group = {}
        self._cuts = set()
        self.clear_links()

    @property
    def faulted(self) -> bool:
        return bool(self._group or self._cuts)

    def blocked(self, src: int, dst: int) -> bool:
        if self._group and self._group.get(src, 0) != self._group.get(dst, 0):
            return True
        return (src, dst) in self._cuts

    # ---- per message -------------------------------------------------------------------

    def delay_ms(self, src: int = -1, dst: int = -1) -> int | None:
        """The delay of one message from `src` to `dst`, or None when loss drops it.
        Always at least 1 ms, so a reply can never arrive at the instant its request was
        sent."""
        rng = self.rng
        if self.loss and rng.random() < self.loss:
            return None
        link_loss = self._link_loss.get((src, dst)) if self._link_loss else None
        if link_loss is not None and rng.random() < link_loss:
            return None
        delay = self.latency_ms
        if self.jitter_ms:
            if self.jitter == "uniform":
                delay += rng.uniform(0.0, self.jitter_ms)
            elif self.jitter == "exponential":
                delay += rng.expovariate(1.0 / self.jitter_ms)
            else:
                delay += abs(rng.gauss(0.0, self.jitter_ms))
        link_delay = self._link_delay.get((src, dst)) if self._link_delay else None
        if link_delay is not None:
            latency_ms, jitter_ms = link_delay
            delay += latency_ms
            if jitter_ms:
                delay += rng.uniform(-jitter_ms, jitter_ms)
        return max(1, round(delay))
