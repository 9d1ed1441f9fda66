"""The piggyback queue: updates waiting to be retransmitted a bounded number of times.

A newer update about the same subject (member, key, broadcast) replaces the queued one
and starts again at zero transmissions.

Pull dissemination: a pull request carries 32-bit digests of the updates the requester
received in the last `hot_rounds` gossip rounds (its hot set) and is answered with the
queued updates not among them, so a request costs 4 bytes per hot update and an answer
carries only what is missing.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import dataclass

from gossipcert.reference_node.core.codec import encode_update
from gossipcert.reference_node.core.messages import Update


def retransmit_limit(retransmit_mult: int, n: int) -> int:
    """memberlist: RetransmitMult * ceil(log10(N + 1)) (docs/protocol-notes.md)."""
    return retransmit_mult * max(1, math.ceil(math.log10(n + 1)))


@dataclass
class _Queued:
    update: Update
    size: int
    order: int
    digest: int = 0
    transmits: int = 0


@dataclass
class _Hot:
    digest: int
    born_round: int


class TransmitQueue:
    def __init__(self) -> None:
        self._entries: dict[str, _Queued] = {}
        self._order = 0
        self._hot: dict[str, _Hot] = {}
        self._round = 0

    def __len__(self) -> int:
        return len(self._entries)

    def enqueue(self, update: Update) -> None:
        self._order += 1
        encoded = json.dumps(encode_update(update), separators=(",", ":"))
        size = len(encoded)
        digest = zlib.crc32(encoded.encode())
        self._entries[update.subject] = _Queued(update, size, self._order, digest)
        self._hot[update.subject] = _Hot(digest, self._round)

    def transmits(self, subject: str) -> int | None:
        entry = self._entries.get(subject)
        return None if entry is None else entry.transmits

    def select(self, limit: int, budget_bytes: int) -> list[Update]:
        """Pick updates for one message: least transmitted first, then most recently
        queued; each pick counts as a transmission and retires at `limit`."""
        return self.hot_missing((), limit, budget_bytes)

    # ---- the hot set served to pull requests -------------------------------------------

    def advance_round(self, hot_rounds: int) -> None:
        """One gossip round passed: updates older than `hot_rounds` rounds cool off."""
        self._round += 1
        cold = [s for s, h in self._hot.items() if self._round - h.born_round >= hot_rounds]
        for subject in cold:
            del self._hot[subject]

    def hot_summary(self, limit: int = 256) -> tuple[int, ...]:
        """Digests of the `limit` newest hot updates: a bounded request; an older update
        the requester already has may come back once more, which its merge ignores."""
        newest = sorted(self._hot.values(), key=lambda h: -h.born_round)[:limit]
        return tuple(sorted({h.digest for h in newest}))

    def hot_missing(self, summary: tuple[int, ...], limit: int, budget_bytes: int) -> list[Update]:
        """Queued updates whose digest is not in `summary`, within budget. An answer is a
        transmission like a push: it counts toward `limit`, so the retransmit limit
        bounds every copy a node sends of an update, whatever the mode."""
        have = set(summary)
        ranked = sorted(self._entries.values(), key=lambda e: (e.transmits, -e.order))
        picked: list[Update] = []
        used = 0
        for entry in ranked:
            if entry.digest in have or used + entry.size > budget_bytes:
                continue
            used += entry.size
            picked.append(entry.update)
            entry.transmits += 1
            if entry.transmits >= limit:
                del self._entries[entry.update.subject]
        return picked
