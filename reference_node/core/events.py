"""What the node observed, in order: the source of detection and delivery times."""

from __future__ import annotations

from dataclasses import dataclass

from gossipcert.reference_node.core.messages import Status


@dataclass(frozen=True)
class MemberEvent:
    seq: int
    at_ms: int
    member: str
    status: Status
    incarnation: int
    kind: str = "member"


@dataclass(frozen=True)
class BroadcastEvent:
    seq: int
    at_ms: int
    id: str
    origin: str
    kind: str = "broadcast"


Event = MemberEvent | BroadcastEvent


class EventLog:
    """Append-only; seq starts at 1 and grows by one."""

    def __init__(self) -> None:
        self._events: list[Event] = []

    def __len__(self) -> int:
        return len(self._events)

    def member(self, at_ms: int, member: str, status: Status, incarnation: int) -> MemberEvent:
        event = MemberEvent(len(self._events) + 1, at_ms, member, status, incarnation)
        self._events.append(event)
        return event

    def broadcast(self, at_ms: int, broadcast_id: str, origin: str) -> BroadcastEvent:
        event = BroadcastEvent(len(self._events) + 1, at_ms, broadcast_id, origin)
        self._events.append(event)
        return event

    def after(self, seq: int) -> list[Event]:
        return self._events[max(0, seq) :]
