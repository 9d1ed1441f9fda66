"""Wire-level vocabulary: member statuses, piggybacked updates and messages.

All frozen dataclasses, so an effect handed to a driver can never be changed behind
the core's back. `codec.py` maps them to and from JSON-ready dicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from reference_node.core.hlc import Timestamp


class Status(StrEnum):
    """Member status, in precedence order at equal incarnation."""

    ALIVE = "alive"
    SUSPECT = "suspect"
    DEAD = "dead"
    LEFT = "left"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def is_live(self) -> bool:
        """Alive or suspect: still probed and gossiped to."""
        return self in (Status.ALIVE, Status.SUSPECT)


_RANK = {Status.ALIVE: 0, Status.SUSPECT: 1, Status.DEAD: 2, Status.LEFT: 3}


@dataclass(frozen=True)
class MemberUpdate:
    member: str
    address: str
    status: Status
    incarnation: int

    @property
    def subject(self) -> str:
        return "m:" + self.member


@dataclass(frozen=True)
class KvUpdate:
    """One key/value entry; `deleted` marks a tombstone."""

    key: str
    value: Any
    deleted: bool
    timestamp: Timestamp
    writer: str

    @property
    def version(self) -> tuple[int, int, str]:
        """LWW order: greatest (wall_ms, logical, writer id) wins."""
        return (self.timestamp.wall_ms, self.timestamp.logical, self.writer)

    @property
    def subject(self) -> str:
        return "k:" + self.key


@dataclass(frozen=True)
class BroadcastUpdate:
    id: str
    origin: str
    payload: Any

    @property
    def subject(self) -> str:
        return "b:" + self.id


Update = MemberUpdate | KvUpdate | BroadcastUpdate


@dataclass(frozen=True)
class FullState:
    """Everything a push-pull carries: members, kv (with tombstones), recent broadcasts."""

    members: tuple[MemberUpdate, ...] = ()
    kv: tuple[KvUpdate, ...] = ()
    broadcasts: tuple[BroadcastUpdate, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Message:
    """Common header: who sent it, where to reach them, their clock, piggybacked updates."""

    kind: ClassVar[str] = "message"
    sender: str
    sender_addr: str
    hlc: Timestamp
    updates: tuple[Update, ...] = field(default=())


@dataclass(frozen=True, kw_only=True)
class Ping(Message):
    kind: ClassVar[str] = "ping"
    seq: int
    target: str


@dataclass(frozen=True, kw_only=True)
class Ack(Message):
    kind: ClassVar[str] = "ack"
    seq: int


@dataclass(frozen=True, kw_only=True)
class PingReq(Message):
    """Ask the receiver to ping `target` for us and forward the ack under `seq`."""

    kind: ClassVar[str] = "ping-req"
    seq: int
    target: str
    target_addr: str


@dataclass(frozen=True, kw_only=True)
class Gossip(Message):
    kind: ClassVar[str] = "gossip"


@dataclass(frozen=True, kw_only=True)
class PushPull(Message):
    """Full-state exchange; `reply` is False on the opening leg, True on the answer."""

    kind: ClassVar[str] = "push-pull"
    state: FullState
    join: bool = False
    reply: bool = False


MESSAGE_TYPES: tuple[type[Message], ...] = (Ping, Ack, PingReq, Gossip, PushPull)
