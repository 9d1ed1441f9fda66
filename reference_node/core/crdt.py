"""State-based CRDTs: g-counter, pn-counter, add-wins or-set, lww-register.

Every state is immutable; `merge` is the lattice join (commutative, associative,
idempotent), so replicas converge whatever order, duplication or loss the gossip and
anti-entropy paths deliver states in. Operations take the writer id and an HLC timestamp
from the node; nothing here reads a clock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from gossipcert.reference_node.core.hlc import Timestamp
from gossipcert.reference_node.core.vclock import VClock, covers, decode_vv, encode_vv, vv_merge


class CrdtError(ValueError):
    """A client asked for something the CRDT cannot do (bad op, bad value)."""


def canonical(value: Any) -> str:
    """One spelling per JSON value, so equal elements compare equal across replicas."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _sort_key(value: Any) -> tuple[int, Any]:
    """Numbers in numeric order, then strings, then anything else by its canonical JSON."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, value)
    if isinstance(value, str):
        return (1, value)
    return (2, canonical(value))


def sorted_values(values: list[Any]) -> list[Any]:
    return sorted(values, key=_sort_key)


def _count(value: Any) -> int:
    amount = 1 if value is None else value
    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
        raise CrdtError("value must be a non-negative integer amount (default 1)")
    return amount


def _merge_counts(a: tuple[tuple[str, int], ...], b: tuple[tuple[str, int], ...]) -> Any:
    merged = dict(a)
    for node, count in b:
        merged[node] = max(merged.get(node, 0), count)
    return tuple(sorted(merged.items()))


def _bump(counts: tuple[tuple[str, int], ...], node: str, by: int) -> Any:
    merged = dict(counts)
    merged[node] = merged.get(node, 0) + by
    return tuple(sorted(merged.items()))


@dataclass(frozen=True)
class GCounter:
    type_name = "g-counter"
    counts: tuple[tuple[str, int], ...] = ()

    def value(self) -> int:
        return sum(c for _, c in self.counts)

    def merge(self, other: GCounter) -> GCounter:
        return GCounter(_merge_counts(self.counts, other.counts))

    def apply(self, op: str, value: Any, writer: str, ts: Timestamp) -> GCounter:
        if op != "increment":
            raise CrdtError(f"g-counter supports increment, not {op!r}")
        return GCounter(_bump(self.counts, writer, _count(value)))

    def to_json(self) -> Any:
        return [[n, c] for n, c in self.counts]


@dataclass(frozen=True)
class PNCounter:
    type_name = "pn-counter"
    increments: tuple[tuple[str, int], ...] = ()
    decrements: tuple[tuple[str, int], ...] = ()

    def value(self) -> int:
        return sum(c for _, c in self.increments) - sum(c for _, c in self.decrements)

    def merge(self, other: PNCounter) -> PNCounter:
        return PNCounter(
            _merge_counts(self.increments, other.increments),
            _merge_counts(self.decrements, other.decrements),
        )

    def apply(self, op: str, value: Any, writer: str, ts: Timestamp) -> PNCounter:
        if op == "increment":
            return PNCounter(_bump(self.increments, writer, _count(value)), self.decrements)
        if op == "decrement":
            return PNCounter(self.increments, _bump(self.decrements, writer, _count(value)))
        raise CrdtError(f"pn-counter supports increment and decrement, not {op!r}")

    def to_json(self) -> Any:
        return {
            "p": [[n, c] for n, c in self.increments],
            "n": [[n, c] for n, c in self.decrements],
        }


@dataclass(frozen=True)
class OrElement:
    key: str  # canonical JSON of the value
    value: Any
    dots: tuple[tuple[str, Timestamp], ...]  # sorted


@dataclass(frozen=True)
class ORSet:
    """Add-wins observed-remove set (optimized: element dots plus a causal context).

    `add` tags the element with a fresh dot and drops the tags it observed; `remove`
    drops the observed tags. A tag survives a join unless the other side has seen it
    (its context covers the dot) and no longer holds it, so an add concurrent with a
    remove keeps its fresh tag: add wins.
    """

    type_name = "or-set"
    elements: tuple[OrElement, ...] = ()  # sorted by key, never with empty dots
    context: VClock = ()

    def value(self) -> list[Any]:
        return sorted_values([e.value for e in self.elements])

    def merge(self, other: ORSet) -> ORSet:
        mine = {e.key: e for e in self.elements}
        theirs = {e.key: e for e in other.elements}
        out: list[OrElement] = []
        for key in sorted(mine.keys() | theirs.keys()):
            a, b = mine.get(key), theirs.get(key)
            a_dots = set(a.dots) if a else set()
            b_dots = set(b.dots) if b else set()
            kept = (
                (a_dots & b_dots)
                | {d for d in a_dots - b_dots if not covers(other.context, d)}
                | {d for d in b_dots - a_dots if not covers(self.context, d)}
            )
            if kept:
                source = a if a is not None else b
                assert source is not None
                out.append(OrElement(key, source.value, tuple(sorted(kept))))
        return ORSet(tuple(out), vv_merge(self.context, other.context))

    def apply(self, op: str, value: Any, writer: str, ts: Timestamp) -> ORSet:
        if op not in ("add", "remove"):
            raise CrdtError(f"or-set supports add and remove, not {op!r}")
        key = canonical(value)
        rest = tuple(e for e in self.elements if e.key != key)
        if op == "remove":
            return ORSet(rest, self.context)
        dot = (writer, ts)
        added = OrElement(key, value, (dot,))
        elements = tuple(sorted((*rest, added), key=lambda e: e.key))
        return ORSet(elements, vv_merge(self.context, (dot,)))

    def to_json(self) -> Any:
        return {
            "e": [[e.value, [[w, t.wall_ms, t.logical] for w, t in e.dots]] for e in self.elements],
            "cc": encode_vv(self.context),
        }


@dataclass(frozen=True)
class LWWRegister:
    type_name = "lww-register"
    timestamp: Timestamp = Timestamp(0, 0)
    writer: str = ""
    val: Any = None

    def value(self) -> Any:
        return self.val

    @property
    def version(self) -> tuple[int, int, str]:
        return (self.timestamp.wall_ms, self.timestamp.logical, self.writer)

    def merge(self, other: LWWRegister) -> LWWRegister:
        return other if other.version > self.version else self

    def apply(self, op: str, value: Any, writer: str, ts: Timestamp) -> LWWRegister:
        if op != "set":
            raise CrdtError(f"lww-register supports set, not {op!r}")
        return self.merge(LWWRegister(ts, writer, value))

    def to_json(self) -> Any:
        return [self.timestamp.wall_ms, self.timestamp.logical, self.writer, self.val]


Crdt = GCounter | PNCounter | ORSet | LWWRegister
TYPES: dict[str, type[Crdt]] = {
    cls.type_name: cls for cls in (GCounter, PNCounter, ORSet, LWWRegister)
}


def new_crdt(type_name: str) -> Crdt:
    cls = TYPES.get(type_name)
    if cls is None:
        raise CrdtError(f"unknown CRDT type {type_name!r}; expected one of {', '.join(TYPES)}")
    return cls()


def merge_any(a: Crdt, b: Crdt) -> Crdt:
    """Join of two states of one name. Replicas that created the name with different
    types concurrently settle on the greater type name, so they still converge."""
    if a.type_name != b.type_name:
        return a if a.type_name > b.type_name else b
    return a.merge(b)  # type: ignore[arg-type]


# ---- decoding (states arrive from the network: strict) ---------------------------------


def _counts(obj: Any) -> tuple[tuple[str, int], ...]:
    if not isinstance(obj, list):
        raise ValueError("counter state must be a list")
    out: dict[str, int] = {}
    for item in obj:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not isinstance(item[0], str)
            or not isinstance(item[1], int)
            or isinstance(item[1], bool)
            or item[1] < 0
            or item[0] in out
        ):
            raise ValueError("counter entry must be [node, count >= 0], once per node")
        out[item[0]] = item[1]
    return tuple(sorted(out.items()))


def _ts(wall: Any, logical: Any) -> Timestamp:
    for v in (wall, logical):
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ValueError("bad timestamp")
    return Timestamp(wall, logical)


def crdt_from_json(type_name: str, obj: Any) -> Crdt:
    """ValueError on anything malformed."""
    if type_name == GCounter.type_name:
        return GCounter(_counts(obj))
    if type_name == PNCounter.type_name:
        if not isinstance(obj, dict):
            raise ValueError("pn-counter state must be an object")
        return PNCounter(_counts(obj.get("p")), _counts(obj.get("n")))
    if type_name == ORSet.type_name:
        if not isinstance(obj, dict) or not isinstance(obj.get("e"), list):
            raise ValueError("or-set state must be an object with a list 'e'")
        context = decode_vv(obj.get("cc"))
        elements: dict[str, OrElement] = {}
        for item in obj["e"]:
            if not isinstance(item, list) or len(item) != 2 or not isinstance(item[1], list):
                raise ValueError("or-set element must be [value, dots]")
            dots = set()
            for dot in item[1]:
                if not isinstance(dot, list) or len(dot) != 3 or not isinstance(dot[0], str):
                    raise ValueError("or-set dot must be [writer, wall_ms, logical]")
                dots.add((dot[0], _ts(dot[1], dot[2])))
            key = canonical(item[0])
            if not dots or key in elements:
                raise ValueError("or-set element without dots or listed twice")
            elements[key] = OrElement(key, item[0], tuple(sorted(dots)))
        return ORSet(tuple(elements[k] for k in sorted(elements)), context)
    if type_name == LWWRegister.type_name:
        if not isinstance(obj, list) or len(obj) != 4 or not isinstance(obj[2], str):
            raise ValueError("lww-register state must be [wall_ms, logical, writer, value]")
        return LWWRegister(_ts(obj[0], obj[1]), obj[2], obj[3])
    raise ValueError(f"unknown CRDT type {type_name!r}")
