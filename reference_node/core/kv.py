"""Replicated key/value store: per-key dotted version vectors, LWW or multi-value.

Each key holds a `KvState`: the siblings (writes) not yet superseded and a version
vector of every write seen. `join` is the state-based merge: a sibling survives unless
the other side has seen its dot and no longer holds it. Under `mv` concurrent writes stay
as siblings; a write that carries a context supersedes exactly the siblings the context
covers. Under `lww` a state keeps only its greatest sibling (HLC timestamp, then writer
id): since every write's timestamp exceeds all it has seen, that is the classic LWW
register, and the vector still rides along.

Deletes write tombstone siblings. A key whose siblings are all tombstones is garbage
collected once its newest tombstone is older than the horizon; the store then remembers
the greatest timestamp it collected (`floor`) and refuses any sibling it has never seen
that is not newer than it. Such a sibling can only be a write the delete superseded,
held by a replica that was out of touch longer than the horizon: it is absorbed into the
vector (so it is superseded everywhere the state travels) and, when it would have
recreated a key we no longer hold, the caller writes a fresh tombstone over it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal

from gossipcert.reference_node.core.crdt import canonical, sorted_values
from gossipcert.reference_node.core.hlc import Timestamp
from gossipcert.reference_node.core.messages import KvState, KvUpdate, Sibling
from gossipcert.reference_node.core.vclock import EMPTY, VClock, covers, vv_merge

Policy = Literal["lww", "mv"]
POLICIES: tuple[Policy, ...] = ("lww", "mv")


def normalize(key: str, siblings: Iterable[Sibling], context: VClock, policy: Policy) -> KvState:
    """Canonical form: sorted by version; under lww only the winner. Under mv every
    sibling stays, tombstones included: dropping a tombstone beside a live sibling would
    make the join depend on the order states meet (not associative). A tombstone beside
    live siblings is invisible and goes with the next write that carries a context."""
    ordered = sorted(siblings, key=lambda s: s.version)
    if policy == "lww":
        ordered = ordered[-1:]
    return KvState(key, tuple(ordered), context)


def join(a: KvState, b: KvState, policy: Policy) -> KvState:
    """The lattice join of two states of one key."""
    a_dots = {s.dot for s in a.siblings}
    b_dots = {s.dot for s in b.siblings}
    kept = [s for s in a.siblings if s.dot in b_dots or not covers(b.context, s.dot)]
    kept += [s for s in b.siblings if s.dot not in a_dots and not covers(a.context, s.dot)]
    return normalize(a.key, kept, vv_merge(a.context, b.context), policy)


def write(
    current: KvState | None,
    key: str,
    sibling: Sibling,
    seen: VClock | None,
    policy: Policy,
) -> KvState:
    """A local write. `seen` is the client's causal context: the siblings it covers are
    superseded; None supersedes everything held (lww, and mv deletes without context)."""
    siblings = current.siblings if current else ()
    context = current.context if current else EMPTY
    if seen is None:
        seen = context
    kept = [s for s in siblings if not covers(seen, s.dot)]
    kept.append(sibling)
    return normalize(key, kept, vv_merge(context, seen, (sibling.dot,)), policy)


def from_update(entry: KvUpdate) -> KvState:
    """A single-write update (the v1 wire form) as a one-sibling state."""
    sibling = Sibling(entry.writer, entry.timestamp, entry.value, entry.deleted)
    return KvState(entry.key, (sibling,), ((entry.writer, entry.timestamp),))


def visible_values(state: KvState) -> list[Any]:
    """What a GET returns: live sibling values, in one order on every replica."""
    return sorted_values([s.value for s in state.siblings if not s.deleted])


def state_hash(state: KvState) -> int:
    """64-bit digest of the whole state (siblings and vector), for Merkle leaves."""
    encoded = canonical(
        [
            state.key,
            [
                [s.writer, s.timestamp.wall_ms, s.timestamp.logical, s.deleted, s.value]
                for s in state.siblings
            ],
            [[w, t.wall_ms, t.logical] for w, t in state.context],
        ]
    )
    return int.from_bytes(hashlib.blake2b(encoded.encode(), digest_size=8).digest(), "big")


Listener = Callable[[str, KvState | None], None]


class KvStore:
    def __init__(self, policy: Policy = "lww", on_change: Listener | None = None) -> None:
        if policy not in POLICIES:
            raise ValueError(f"conflict policy must be one of {', '.join(POLICIES)}")
        self.policy: Policy = policy
        self._entries: dict[str, KvState] = {}
        # Keys whose siblings are all tombstones -> newest tombstone timestamp.
        self._tombstones: dict[str, Timestamp] = {}
        self.floor = Timestamp(0, 0)
        self.collected = 0
        self._digest: str | None = None
        self._on_change = on_change

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> KvState | None:
        """The state of `key`, tombstones included."""
        return self._entries.get(key)

    def entries(self) -> Iterable[KvState]:
        return self._entries.values()

    def keys(self) -> Iterator[str]:
        return iter(self._entries)

    @property
    def tombstone_count(self) -> int:
        return len(self._tombstones)

    # ---- changes ---------------------------------------------------------------------

    def write(self, key: str, sibling: Sibling, seen: VClock | None = None) -> KvState:
        state = write(self._entries.get(key), key, sibling, seen, self.policy)
        self._store(state)
        return state

    def merge(self, entry: KvState | KvUpdate) -> KvState | None:
        """Join `entry` in; the new state when the store changed, else None."""
        merged, _ = self.merge_checked(entry)
        return merged

    def merge_checked(self, entry: KvState | KvUpdate) -> tuple[KvState | None, bool]:
        """Like `merge`; the flag is True when live writes older than the GC floor were
        refused for a key we do not hold, so the caller must write a tombstone over them
        (see the module docstring)."""
        incoming = from_update(entry) if isinstance(entry, KvUpdate) else entry
        current = self._entries.get(incoming.key)
        if self.floor > Timestamp(0, 0):
            incoming, refused_live = self._refuse_old(incoming, current)
            if current is None and not incoming.siblings:
                return None, refused_live
        merged = incoming if current is None else join(current, incoming, self.policy)
        if not merged.siblings or merged == current:
            return None, False
        self._store(merged)
        return merged, False

    def _refuse_old(self, incoming: KvState, current: KvState | None) -> tuple[KvState, bool]:
        known = {s.dot for s in current.siblings} if current else set()
        context = current.context if current else EMPTY
        keep: list[Sibling] = []
        refused_live = False
        for s in incoming.siblings:
            if s.dot in known or covers(context, s.dot) or s.timestamp > self.floor:
                keep.append(s)
            elif not s.deleted:
                refused_live = True
        if len(keep) == len(incoming.siblings):
            return incoming, False
        return KvState(incoming.key, tuple(keep), incoming.context), refused_live

    def collect(self, now_ms: int, horizon_ms: int) -> list[str]:
        """Drop keys whose newest tombstone is at least `horizon_ms` old; their keys."""
        expired = [k for k, ts in self._tombstones.items() if ts.wall_ms + horizon_ms <= now_ms]
        for key in expired:
            ts = self._tombstones.pop(key)
            del self._entries[key]
            self.floor = max(self.floor, ts)
            self.collected += 1
            self._digest = None
            if self._on_change is not None:
                self._on_change(key, None)
        return expired

    def _store(self, state: KvState) -> None:
        self._entries[state.key] = state
        if state.deleted:
            self._tombstones[state.key] = max(s.timestamp for s in state.siblings)
        else:
            self._tombstones.pop(state.key, None)
        self._digest = None
        if self._on_change is not None:
            self._on_change(state.key, state)

    # ---- reads -----------------------------------------------------------------------

    def visible(self) -> dict[str, list[Any]]:
        """Every key with a visible value -> its sibling values (one under lww)."""
        out: dict[str, list[Any]] = {}
        for key in sorted(self._entries):
            values = visible_values(self._entries[key])
            if values:
                out[key] = values
        return out

    def live(self) -> dict[str, Any]:
        """Key -> the greatest live sibling's value (the LWW winner), for keys with one."""
        out: dict[str, Any] = {}
        for key in sorted(self._entries):
            live = [s for s in self._entries[key].siblings if not s.deleted]
            if live:
                out[key] = live[-1].value
        return out

    def digest(self) -> str:
        """sha256 over the sorted visible (key, sorted values) pairs: equal visible state
        gives an equal digest whatever the versions or tombstones behind it."""
        if self._digest is None:
            items = [[k, v] for k, v in self.visible().items()]
            text = json.dumps(items, sort_keys=True, separators=(",", ":"))
            self._digest = hashlib.sha256(text.encode()).hexdigest()
        return self._digest
