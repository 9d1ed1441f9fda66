"""Wire-level vocabulary: member statuses, piggybacked updates and messages.

All frozen dataclasses, so an effect handed to a driver can never be changed behind
the core's back. `codec.py` maps them to and from JSON-ready dicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from gossipcert.reference_node.core.crdt import Crdt
from gossipcert.reference_node.core.hlc import Timestamp
from gossipcert.reference_node.core.vclock import VClock


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
    # Who suspected it (suspect updates only): Lifeguard counts distinct suspecters.
    by: str = ""

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


@dataclass(frozen=True)
class Sibling:
    """One write of a key: its dot is `(writer, timestamp)`; `deleted` marks a tombstone."""

    writer: str
    timestamp: Timestamp
    value: Any
    deleted: bool = False

    @property
    def dot(self) -> tuple[str, Timestamp]:
        return (self.writer, self.timestamp)

    @property
    def version(self) -> tuple[int, int, str]:
        """LWW order: greatest (wall_ms, logical, writer id) wins."""
        return (self.timestamp.wall_ms, self.timestamp.logical, self.writer)


@dataclass(frozen=True)
class KvState:
    """The whole replicated state of one key: the siblings not yet superseded, sorted by
    version, and the version vector of every write the state has seen (`kv.py`)."""

    key: str
    siblings: tuple[Sibling, ...]
    context: VClock

    @property
    def subject(self) -> str:
        return "k:" + self.key

    @property
    def deleted(self) -> bool:
        """No visible value: every sibling is a tombstone."""
        return all(s.deleted for s in self.siblings)

    @property
    def winner(self) -> Sibling:
        """The LWW winner (greatest version)."""
        return self.siblings[-1]

    @property
    def value(self) -> Any:
        return self.winner.value

    @property
    def timestamp(self) -> Timestamp:
        return self.winner.timestamp

    @property
    def writer(self) -> str:
        return self.winner.writer


@dataclass(frozen=True)
class CrdtUpdate:
    """The full state of one named CRDT."""

    name: str
    crdt: Crdt

    @property
    def subject(self) -> str:
        return "c:" + self.name


Update = MemberUpdate | KvUpdate | BroadcastUpdate | KvState | CrdtUpdate


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
class Nack(Message):
    """A ping-req helper heard nothing from the target: the requester learns that its
    own links work, so a missing ack is the target's fault, not its own slowness."""

    kind: ClassVar[str] = "nack"
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


@dataclass(frozen=True)
class MerkleDigest:
    """My hashes at `level` of the children of `parents` (level 0: the root, no parents).
    Children left out are empty on my side."""

    level: int
    parents: tuple[int, ...]
    hashes: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class MerkleLeaves:
    """The (item id, item hash) pairs I hold in the differing `leaves`."""

    leaves: tuple[int, ...]
    items: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class MerkleItems:
    """Item states for the peer to merge, and the ids whose states I want back."""

    states: tuple[KvState | CrdtUpdate, ...]
    want: tuple[str, ...] = ()


MerklePart = MerkleDigest | MerkleLeaves | MerkleItems


@dataclass(frozen=True, kw_only=True)
class Merkle(Message):
    """One hop of a Merkle anti-entropy exchange (`merkle.py`). Stateless: every hop
    carries what the next needs, so a lost hop ends the exchange and the next round
    starts over from the roots."""

    kind: ClassVar[str] = "merkle"
    part: MerklePart


@dataclass(frozen=True, kw_only=True)
class Pull(Message):
    """Pull dissemination: `summary` holds short digests of the updates the sender
    already has hot; the receiver answers with a gossip of its hot updates not in it."""

    kind: ClassVar[str] = "pull"
    summary: tuple[int, ...] = ()


MESSAGE_TYPES: tuple[type[Message], ...] = (
    Ping,
    Ack,
    Nack,
    PingReq,
    Gossip,
    PushPull,
    Merkle,
    Pull,
)
