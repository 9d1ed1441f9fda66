"""The piggyback queue: updates waiting to be retransmitted a bounded number of times.

A newer update about the same subject (member, key, broadcast) replaces the queued one
and starts again at zero transmissions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from reference_node.core.codec import update_size
from reference_node.core.messages import Update


def retransmit_limit(retransmit_mult: int, n: int) -> int:
    """memberlist: RetransmitMult * ceil(log10(N + 1)) (REFERENCE.md)."""
    return retransmit_mult * max(1, math.ceil(math.log10(n + 1)))


@dataclass
class _Queued:
    update: Update
    size: int
    order: int
    transmits: int = 0


class TransmitQueue:
    def __init__(self) -> None:
        self._entries: dict[str, _Queued] = {}
        self._order = 0

    def __len__(self) -> int:
        return len(self._entries)

    def enqueue(self, update: Update) -> None:
        self._order += 1
        self._entries[update.subject] = _Queued(update, update_size(update), self._order)

    def transmits(self, subject: str) -> int | None:
        entry = self._entries.get(subject)
        return None if entry is None else entry.transmits

    def select(self, limit: int, budget_bytes: int) -> list[Update]:
        """Pick updates for one message: least transmitted first, then most recently
        queued; each pick counts as a transmission and retires at `limit`."""
        # Sorting per message is fine at v1 sizes; a heap keyed the same way scales.
        ranked = sorted(self._entries.values(), key=lambda e: (e.transmits, -e.order))
        picked: list[Update] = []
        used = 0
        for entry in ranked:
            if used + entry.size > budget_bytes:
                continue
            used += entry.size
            picked.append(entry.update)
            entry.transmits += 1
            if entry.transmits >= limit:
                del self._entries[entry.update.subject]
        return picked
