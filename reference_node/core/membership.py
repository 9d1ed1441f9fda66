"""The member table and SWIM's precedence rule.

The table only decides whether an update about *another* member supersedes what we
know; updates about ourselves (refutation) are the node's business.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from gossipcert.reference_node.core.messages import MemberUpdate, Status

__all__ = ["Change", "Member", "MemberBase", "MemberTable", "Status", "supersedes"]


@dataclass(frozen=True)
class Member:
    id: str
    address: str
    status: Status
    incarnation: int
    since_ms: int

    def as_update(self) -> MemberUpdate:
        return MemberUpdate(self.id, self.address, self.status, self.incarnation)


@dataclass(frozen=True)
class Change:
    old: Member | None
    new: Member

    @property
    def status_changed(self) -> bool:
        return self.old is None or self.old.status is not self.new.status


def supersedes(update: MemberUpdate, known: Member) -> bool:
    """SWIM precedence: a higher incarnation wins; at equal incarnation
    alive < suspect < dead < left. So a stale alive never resurrects a dead member and
    `left` is final for its incarnation."""
    if update.incarnation != known.incarnation:
        return update.incarnation > known.incarnation
    return update.status.rank > known.status.rank


class MemberBase:
    """A read-only member table shared underneath many nodes' tables.

    The simulator gives 10,000 nodes the same initial full membership: one shared base
    plus a small per-node overlay of changes costs O(n + changes) memory instead of
    O(n^2). Nothing may change a base after tables use it.
    """

    def __init__(self, members: Iterable[Member]) -> None:
        self.members: dict[str, Member] = {m.id: m for m in members}
        self.live = sum(1 for m in self.members.values() if m.status.is_live)
        self._ids: dict[frozenset[Status], list[str]] = {}

    def ids(self, statuses: frozenset[Status]) -> list[str]:
        """Sorted ids with one of `statuses`; shared, callers must not mutate it."""
        ids = self._ids.get(statuses)
        if ids is None:
            ids = sorted(m.id for m in self.members.values() if m.status in statuses)
            self._ids[statuses] = ids
        return ids


_EMPTY_BASE = MemberBase(())
_DOWN = tuple(s for s in Status if not s.is_live)


class MemberTable:
    """Every member ever heard of, including dead and left ones (kept as tombstones so
    stale gossip cannot bring them back).

    Stored as an optional shared `MemberBase` under a per-node overlay (writes) and a
    set of base ids removed by reaping; sorted id lists are cached per status set.
    """

    def __init__(self, base: MemberBase | None = None) -> None:
        self._base = _EMPTY_BASE
        self._overlay: dict[str, Member] = {}
        self._removed: set[str] = set()
        self._size = 0
        self._live = 0
        self._ids: dict[frozenset[Status], list[str]] = {}
        if base is not None:
            self.use_base(base)

    def use_base(self, base: MemberBase) -> None:
        """Put `base` underneath what this table holds (its own entries win)."""
        mine = list(self._overlay.values())
        self._base = base
        self._overlay = {}
        self._removed = set()
        self._size = len(base.members)
        self._live = base.live
        self._ids = {}
        for member in mine:
            self.set(member)

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[Member]:
        if not self._base.members:
            return iter(self._overlay.values())
        return self._iter_layered()

    def _iter_layered(self) -> Iterator[Member]:
        overlay, removed = self._overlay, self._removed
        for member_id, member in self._base.members.items():
            if member_id in removed:
                continue
            yield overlay.get(member_id, member)
        for member_id, member in overlay.items():
            if member_id not in self._base.members:
                yield member

    def __contains__(self, member_id: object) -> bool:
        return isinstance(member_id, str) and self.get(member_id) is not None

    def get(self, member_id: str) -> Member | None:
        member = self._overlay.get(member_id)
        if member is not None:
            return member
        if member_id in self._removed:
            return None
        return self._base.members.get(member_id)

    def _changed(self, old: Member | None, new: Member | None) -> None:
        """Keep the counters and the cached id lists in step with one write."""
        self._size += (new is not None) - (old is not None)
        self._live += (new is not None and new.status.is_live) - (
            old is not None and old.status.is_live
        )
        old_status = None if old is None else old.status
        new_status = None if new is None else new.status
        if old_status is not new_status:
            for statuses in [s for s in self._ids if (old_status in s) != (new_status in s)]:
                del self._ids[statuses]

    def set(self, member: Member) -> Change:
        """Unconditional write, for the node's own record."""
        old = self.get(member.id)
        self._overlay[member.id] = member
        self._removed.discard(member.id)
        self._changed(old, member)
        return Change(old, member)

    def remove(self, member_id: str) -> Member | None:
        """Forget a member entirely (reaping); the node keeps its own short record."""
        old = self.get(member_id)
        if old is None:
            return None
        self._overlay.pop(member_id, None)
        if member_id in self._base.members:
            self._removed.add(member_id)
        self._changed(old, None)
        return old

    def apply(self, update: MemberUpdate, now_ms: int) -> Change | None:
        """Apply `update` if it supersedes what we know; None when it is stale."""
        known = self.get(update.member)
        if known is not None and not supersedes(update, known):
            return None
        since = now_ms
        if known is not None and known.status is update.status:
            since = known.since_ms
        # The update's address wins: a member restarted elsewhere under the same id
        # announces its new address with a higher incarnation.
        member = Member(update.member, update.address, update.status, update.incarnation, since)
        return self.set(member)

    def ids_with(self, *statuses: Status, exclude: str | None = None) -> list[str]:
        """Ids in a stable (sorted) order so seeded random choices are reproducible."""
        ids = self._sorted_ids(frozenset(statuses))
        if exclude is not None:
            at = bisect_left(ids, exclude)
            if at < len(ids) and ids[at] == exclude:
                return ids[:at] + ids[at + 1 :]
        return list(ids)

    def _sorted_ids(self, statuses: frozenset[Status]) -> list[str]:
        ids = self._ids.get(statuses)
        if ids is not None:
            return ids
        base = self._base
        ids = base.ids(statuses)
        dropped: set[str] = set()
        added: list[str] = []
        for member_id in self._removed:
            if base.members[member_id].status in statuses:
                dropped.add(member_id)
        for member_id, member in self._overlay.items():
            in_base = member_id in base.members and base.members[member_id].status in statuses
            if in_base and member.status not in statuses:
                dropped.add(member_id)
            elif not in_base and member.status in statuses:
                added.append(member_id)
        if dropped or added:
            ids = sorted([i for i in ids if i not in dropped] + added)
        self._ids[statuses] = ids
        return ids

    def down(self, exclude: str | None = None) -> list[Member]:
        """Dead and left members, found through the cached id lists rather than a scan
        of the whole table (reaping asks every second, 10,000 members deep)."""
        ids = self.ids_with(*_DOWN, exclude=exclude)
        return [m for m in map(self.get, ids) if m is not None]

    def live_count(self) -> int:
        """Alive and suspect members, self included: the `n` of the SWIM formulas."""
        return self._live
