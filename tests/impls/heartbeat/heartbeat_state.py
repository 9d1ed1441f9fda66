"""Pure state of the heartbeat node: membership entries, the LWW key/value store and the
state-based CRDTs, with their merge rules. No sockets, no clock: callers pass times in.

Every replicated piece of state here is a join-semilattice, so merging the same update
twice, or in any order, gives the same result. That is what lets the node spread updates
by flooding and repair misses by full-state anti-entropy without any coordination.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

ALIVE, DEAD, LEFT = "alive", "dead", "left"
# At equal generation a stronger status wins: a departure outranks a death, and a death
# outranks any heartbeat of the same life (only a new generation can undo it).
STATUS_RANK = {ALIVE: 0, DEAD: 1, LEFT: 2}

CRDT_TYPES = ("g-counter", "pn-counter", "or-set", "lww-register")
CRDT_OPS = {
    "g-counter": ("increment",),
    "pn-counter": ("increment", "decrement"),
    "or-set": ("add", "remove"),
    "lww-register": ("set",),
}


def canonical(value: Any) -> str:
    """One JSON text per value, so equal values compare and hash equal."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def digest_of(value: Any) -> str:
    return hashlib.sha256(canonical(value).encode()).hexdigest()


# ----------------------------------------------------------------------------- membership


@dataclass
class Member:
    """One row of the membership table.

    ``gen`` is the generation of the member's life: its boot time in ms, raised again
    when it refutes a death. ``hb`` is its heartbeat counter within that generation.
    ``seen`` is the local (monotonic) time the heartbeat last went up; it is never sent.
    """

    id: str
    address: str
    gen: int
    hb: int
    status: str
    seen: float = 0.0

    def wire(self) -> list[Any]:
        return [self.id, self.address, self.gen, self.hb, self.status]


def parse_member(row: Any) -> Member | None:
    """A wire row ``[id, address, gen, hb, status]``, or None if malformed."""
    if not isinstance(row, list) or len(row) != 5:
        return None
    mid, addr, gen, hb, status = row
    if not (isinstance(mid, str) and isinstance(addr, str) and isinstance(gen, int)
            and isinstance(hb, int) and status in STATUS_RANK):
        return None
    return Member(mid, addr, gen, hb, status)


def newer(incoming: Member, local: Member) -> str | None:
    """How an incoming row about the same member changes the local one.

    Returns ``"replace"`` (a later generation, or a stronger status in the same one),
    ``"beat"`` (same generation and status alive, higher heartbeat) or None (stale).
    """
    if incoming.gen != local.gen:
        return "replace" if incoming.gen > local.gen else None
    if STATUS_RANK[incoming.status] != STATUS_RANK[local.status]:
        return "replace" if STATUS_RANK[incoming.status] > STATUS_RANK[local.status] else None
    if incoming.status == ALIVE and incoming.hb > local.hb:
        return "beat"
    return None


def suspicion_ms(suspicion_mult: float, max_mult: float, probe_interval_ms: float,
                 n: int) -> float:
    """How long a member stays suspect before it is declared dead: the declared
    ``suspicion_mult`` scaled by log10 of the cluster size (at least 1), times the
    declared ``suspicion_max_timeout_mult``."""
    return max_mult * suspicion_mult * max(1.0, math.log10(max(1, n))) * probe_interval_ms


def retransmit_limit(retransmit_mult: float, n: int) -> int:
    """Gossip rounds a new update rides along on heartbeat messages."""
    return max(1, math.ceil(retransmit_mult * math.ceil(math.log10(n + 1))))


# ----------------------------------------------------------------------------- kv (lww)

Stamp = tuple[int, str]  # (microseconds since the epoch, writer node id)


@dataclass(frozen=True)
class Entry:
    """One key's winning write: its stamp, its value, or a tombstone."""

    stamp: Stamp
    value: Any
    deleted: bool = False

    def wire(self) -> list[Any]:
        return [self.stamp[0], self.stamp[1], self.value, self.deleted]


def parse_entry(row: Any) -> Entry | None:
    if not isinstance(row, list) or len(row) != 4:
        return None
    micros, writer, value, deleted = row
    if not (isinstance(micros, int) and isinstance(writer, str) and isinstance(deleted, bool)):
        return None
    return Entry((micros, writer), None if deleted else value, deleted)


class KvStore:
    """Last-writer-wins registers per key; deletes are tombstones that win like writes."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}

    def merge(self, key: str, entry: Entry) -> bool:
        """Keep the write with the greater stamp; True if the local state changed."""
        current = self.entries.get(key)
        if current is not None and current.stamp >= entry.stamp:
            return False
        self.entries[key] = entry
        return True

    def get(self, key: str) -> Entry | None:
        entry = self.entries.get(key)
        return None if entry is None or entry.deleted else entry

    def visible(self) -> dict[str, Any]:
        return {k: e.value for k, e in sorted(self.entries.items()) if not e.deleted}

    def forget(self, key: str) -> None:
        self.entries.pop(key, None)


# ----------------------------------------------------------------------------- CRDTs


class CrdtError(ValueError):
    """An operation that does not fit the type (bad op or value)."""


def crdt_new(kind: str) -> dict[str, Any]:
    if kind == "g-counter":
        return {"p": {}}
    if kind == "pn-counter":
        return {"p": {}, "n": {}}
    if kind == "or-set":
        return {"adds": {}, "rm": []}
    if kind == "lww-register":
        return {"stamp": None, "v": None}
    raise CrdtError(f"unknown CRDT type {kind!r}")


def _amount(value: Any) -> int:
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CrdtError("the amount must be a non-negative integer")
    return value


def crdt_apply(kind: str, state: dict[str, Any], op: str, value: Any, replica: str,
               tag: str, stamp: Stamp, *, removes: bool = True,
               remove_wins: bool = False) -> dict[str, Any]:
    """A new state with one local operation applied.

    ``replica`` names this life of this node (counters keep one slot per replica),
    ``tag`` is unique to this operation (or-set adds), ``stamp`` orders register sets.
    ``removes=False`` makes or-set removes do nothing (a seeded defect);
    ``remove_wins=True`` stamps adds and removes so that a remove hides every add of its
    element stamped before it, seen or not (a seeded defect: an LWW-element set).
    """
    if op not in CRDT_OPS[kind]:
        raise CrdtError(f"{kind} has no operation {op!r}")
    if kind in ("g-counter", "pn-counter"):
        side = "n" if op == "decrement" else "p"
        counts = dict(state[side])
        counts[replica] = counts.get(replica, 0) + _amount(value)
        return {**state, side: counts}
    if kind == "or-set":
        adds = dict(state["adds"])
        removed = set(state["rm"])
        out: dict[str, Any] = {}
        if remove_wins:
            out = {"at": dict(state.get("at") or {}), "rmt": dict(state.get("rmt") or {})}
        if op == "add":
            adds[tag] = value
            if remove_wins:
                out["at"][tag] = [stamp[0], stamp[1]]
        elif removes:
            key = canonical(value)
            removed |= {t for t, v in adds.items() if canonical(v) == key}
            if remove_wins:
                out["rmt"][key] = max(out["rmt"].get(key, [0, ""]), [stamp[0], stamp[1]])
        return {"adds": adds, "rm": sorted(removed), **out}
    return {"stamp": [stamp[0], stamp[1]], "v": value}


def crdt_merge(kind: str, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """The least upper bound of two states of the same type."""
    if kind in ("g-counter", "pn-counter"):
        out: dict[str, Any] = {}
        for side in ("p", "n") if kind == "pn-counter" else ("p",):
            merged = dict(a[side])
            for rep, count in b[side].items():
                merged[rep] = max(merged.get(rep, 0), count)
            out[side] = merged
        return out
    if kind == "or-set":
        merged = {"adds": {**a["adds"], **b["adds"]}, "rm": sorted(set(a["rm"]) | set(b["rm"]))}
        if "rmt" in a or "rmt" in b:  # the remove-wins defect's stamps
            rmt = dict(a.get("rmt") or {})
            for key, at in (b.get("rmt") or {}).items():
                rmt[key] = max(rmt.get(key, at), at)
            merged |= {"at": {**(a.get("at") or {}), **(b.get("at") or {})}, "rmt": rmt}
        return merged
    sa, sb = a["stamp"], b["stamp"]
    if sb is None:
        return a
    if sa is None or (sb[0], sb[1]) > (sa[0], sa[1]):
        return b
    return a


def crdt_value(kind: str, state: dict[str, Any]) -> Any:
    if kind == "g-counter":
        return sum(state["p"].values())
    if kind == "pn-counter":
        return sum(state["p"].values()) - sum(state["n"].values())
    if kind == "or-set":
        removed = set(state["rm"])
        at, rmt = state.get("at") or {}, state.get("rmt") or {}
        removed |= {t for t, v in state["adds"].items()
                    if canonical(v) in rmt and t in at and at[t] < rmt[canonical(v)]}
        live = {canonical(v): v for t, v in state["adds"].items() if t not in removed}
        return [live[k] for k in sorted(live)]
    return state["v"]


def crdt_valid(kind: Any, state: Any) -> bool:
    """Whether a received state has the shape of its type (anything else is dropped)."""
    if kind not in CRDT_TYPES or not isinstance(state, dict):
        return False
    if kind in ("g-counter", "pn-counter"):
        sides = ("p", "n") if kind == "pn-counter" else ("p",)
        return all(isinstance(state.get(s), dict)
                   and all(isinstance(c, int) for c in state[s].values()) for s in sides)
    if kind == "or-set":
        return isinstance(state.get("adds"), dict) and isinstance(state.get("rm"), list)
    stamp = state.get("stamp")
    return "v" in state and (stamp is None or (
        isinstance(stamp, list) and len(stamp) == 2 and isinstance(stamp[0], int)
        and isinstance(stamp[1], str)))
