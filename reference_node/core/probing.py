"""SWIM probe bookkeeping: who to probe next, the probe in flight, relayed probes."""

from __future__ import annotations

import random
from bisect import bisect_left
from dataclasses import dataclass


class ProbeOrder:
    """Round-robin over a shuffled member list, reshuffled each pass. Every member is
    probed once per pass, which bounds first detection at 2n - 1 periods (SWIM).

    The shuffle is drawn lazily (a sparse Fisher-Yates over the pass's candidate list)
    so a pass costs O(probes made), not O(n): 10,000 simulated nodes would otherwise
    each hold a shuffled 10,000-entry list.
    """

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._pass: list[str] = []  # sorted candidates when the pass began
        self._drawn = 0  # positions of _pass already drawn
        self._swaps: dict[int, int] = {}  # sparse Fisher-Yates state over _pass indices
        self._added: list[str] = []  # joined during the pass, not yet drawn
        self._probed: set[str] = set()  # drawn during this pass

    def add(self, member_id: str) -> None:
        """A new member joins the current pass at a random not-yet-probed position."""
        if member_id in self._added:
            return
        if member_id not in self._probed and _contains_sorted(self._pass, member_id):
            return  # still waiting for its turn in this pass
        self._added.append(member_id)

    def next(self, candidates: list[str]) -> str | None:
        """The next member to probe among `candidates` (the currently probe-able ones,
        sorted, as `MemberTable.ids_with` gives them)."""
        if not candidates:
            return None
        for _ in range(2):
            while self._drawn < len(self._pass) or self._added:
                member_id = self._draw()
                if member_id in self._probed:
                    continue
                self._probed.add(member_id)
                if _contains_sorted(candidates, member_id):
                    return member_id
            self._pass = candidates
            self._drawn = 0
            self._swaps = {}
            self._added = []
            self._probed = set()
        return None

    def _draw(self) -> str:
        """Uniformly one of the not-yet-drawn members of the pass (joiners included),
        which is what inserting joiners at random unprobed positions amounts to."""
        remaining = len(self._pass) - self._drawn
        pick = self._rng.randrange(remaining + len(self._added))
        if pick >= remaining:
            added = self._added
            at = pick - remaining
            added[at], added[-1] = added[-1], added[at]
            return added.pop()
        here, there = self._drawn, self._drawn + pick
        chosen = self._swaps.get(there, there)
        at_here = self._swaps.pop(here, here)
        if there != here:
            self._swaps[there] = at_here
        self._drawn += 1
        return self._pass[chosen]


def _contains_sorted(ids: list[str], member_id: str) -> bool:
    at = bisect_left(ids, member_id)
    return at < len(ids) and ids[at] == member_id


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
    # Lifeguard: helpers asked through ping-req, and how many said "no ack either".
    expected_nacks: int = 0
    nacks: int = 0
    # Set once the period end was pushed back because our own timer fired late.
    extended: bool = False


@dataclass
class Relay:
    """A ping we sent on behalf of `requester` (ping-req); its ack goes back under
    `requester_seq`, or a nack at `nack_at_ms` when the target stayed silent."""

    requester: str
    requester_addr: str
    requester_seq: int
    expires_ms: int
    nack_at_ms: int
    nack_sent: bool = False
