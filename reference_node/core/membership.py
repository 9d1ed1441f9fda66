"""The member table and SWIM's precedence rule.

The table only decides whether an update about *another* member supersedes what we
know; updates about ourselves (refutation) are the node's business.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from reference_node.core.messages import MemberUpdate, Status

__all__ = ["Change", "Member", "MemberTable", "Status", "supersedes"]


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


class MemberTable:
    """Every member ever heard of, including dead and left ones (kept as tombstones so
    stale gossip cannot bring them back)."""

    def __init__(self) -> None:
        self._members: dict[str, Member] = {}

    def __len__(self) -> int:
        return len(self._members)

    def __iter__(self) -> Iterator[Member]:
        return iter(self._members.values())

    def __contains__(self, member_id: object) -> bool:
        return member_id in self._members

    def get(self, member_id: str) -> Member | None:
        return self._members.get(member_id)

    def set(self, member: Member) -> Change:
        """Unconditional write, for the node's own record."""
        old = self._members.get(member.id)
        self._members[member.id] = member
        return Change(old, member)

    def apply(self, update: MemberUpdate, now_ms: int) -> Change | None:
        """Apply `update` if it supersedes what we know; None when it is stale."""
        known = self._members.get(update.member)
        if known is not None and not supersedes(update, known):
            return None
        since = now_ms
        if known is not None and known.status is update.status:
            since = known.since_ms
        # The update's address wins: a member restarted elsewhere under the same id
        # announces its new address with a higher incarnation.
        member = Member(update.member, update.address, update.status, update.incarnation, since)
        self._members[update.member] = member
        return Change(known, member)

    def ids_with(self, *statuses: Status, exclude: str | None = None) -> list[str]:
        """Ids in a stable (sorted) order so seeded random choices are reproducible."""
        return sorted(
            m.id for m in self._members.values() if m.status in statuses and m.id != exclude
        )

    def live_count(self) -> int:
        """Alive and suspect members, self included: the `n` of the SWIM formulas."""
        return sum(1 for m in self._members.values() if m.status.is_live)
