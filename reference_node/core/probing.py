"""SWIM probe bookkeeping: who to probe next, the probe in flight, relayed probes."""

from __future__ import annotations

import random
from dataclasses import dataclass


class ProbeOrder:
    """Round-robin over a shuffled member list, reshuffled each pass. Every member is
    probed once per pass, which bounds first detection at 2n - 1 periods (SWIM)."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._order: list[str] = []
        self._index = 0

    def add(self, member_id: str) -> None:
        """A new member joins the current pass at a random not-yet-probed position."""
        if member_id in self._order[self._index :]:
            return
        position = self._rng.randint(self._index, len(self._order))
        self._order.insert(position, member_id)

    def next(self, candidates: list[str]) -> str | None:
        """The next member to probe among `candidates` (the currently probe-able ones)."""
        allowed = set(candidates)
        if not allowed:
            return None
        for _ in range(2):
            while self._index < len(self._order):
                member_id = self._order[self._index]
                self._index += 1
                if member_id in allowed:
                    return member_id
            self._order = sorted(allowed)
            self._rng.shuffle(self._order)
            self._index = 0
        return None


@dataclass
class ActiveProbe:
    """Our own probe of `target` during one protocol period."""

    seq: int
    target: str
    incarnation: int
    indirect_at_ms: int
    period_end_ms: int
    indirect_sent: bool = False
    acked: bool = False
    # Set once the period end was pushed back because our own timer fired late.
    extended: bool = False


@dataclass(frozen=True)
class Relay:
    """A ping we sent on behalf of `requester` (ping-req); its ack goes back under
    `requester_seq`."""

    requester: str
    requester_addr: str
    requester_seq: int
    expires_ms: int
