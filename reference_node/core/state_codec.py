"""Wire form of replicated state: key states, CRDT states, Merkle hops and pull requests.

Split from `codec.py`, which dispatches here; the same rule holds: everything from the
network is untrusted, and anything malformed raises `ValueError` (the codec turns it into
its `DecodeError`).
"""

from __future__ import annotations

from typing import Any

from gossipcert.reference_node.core.crdt import crdt_from_json
from gossipcert.reference_node.core.hlc import Timestamp
from gossipcert.reference_node.core.messages import (
    CrdtUpdate,
    KvState,
    MerkleDigest,
    MerkleItems,
    MerkleLeaves,
    MerklePart,
    Sibling,
)
from gossipcert.reference_node.core.vclock import covers, decode_vv, encode_vv

MAX_MERKLE_LEVEL = 15


def encode_kv_state(state: KvState) -> dict[str, Any]:
    siblings: list[list[Any]] = []
    for s in state.siblings:
        row: list[Any] = [s.writer, s.timestamp.wall_ms, s.timestamp.logical]
        if not s.deleted:
            row.append(s.value)  # three fields: a tombstone; four: a value
        siblings.append(row)
    return {"k": "ks", "key": state.key, "s": siblings, "vv": encode_vv(state.context)}


def encode_crdt(update: CrdtUpdate) -> dict[str, Any]:
    return {"k": "c", "name": update.name, "t": update.crdt.type_name, "s": update.crdt.to_json()}


def _nat(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError("expected a non-negative integer")
    return value


def decode_kv_state(obj: dict[str, Any]) -> KvState:
    key = obj.get("key")
    rows = obj.get("s")
    if not isinstance(key, str) or not isinstance(rows, list) or not rows:
        raise ValueError("key state needs a string 'key' and a non-empty list 's'")
    context = decode_vv(obj.get("vv"))
    siblings: list[Sibling] = []
    dots = set()
    for row in rows:
        if not isinstance(row, list) or len(row) not in (3, 4) or not isinstance(row[0], str):
            raise ValueError("sibling must be [writer, wall_ms, logical, value?]")
        ts = Timestamp(_nat(row[1]), _nat(row[2]))
        sibling = Sibling(row[0], ts, row[3] if len(row) == 4 else None, len(row) == 3)
        if sibling.dot in dots or not covers(context, sibling.dot):
            raise ValueError("sibling dot repeated or not covered by the state's vector")
        dots.add(sibling.dot)
        siblings.append(sibling)
    siblings.sort(key=lambda s: s.version)
    return KvState(key, tuple(siblings), context)


def decode_crdt(obj: dict[str, Any]) -> CrdtUpdate:
    name = obj.get("name")
    type_name = obj.get("t")
    if not isinstance(name, str) or not isinstance(type_name, str):
        raise ValueError("crdt update needs string 'name' and 't'")
    return CrdtUpdate(name, crdt_from_json(type_name, obj.get("s")))


def encode_part(part: MerklePart) -> dict[str, Any]:
    if isinstance(part, MerkleDigest):
        return {"d": [part.level, list(part.parents), [list(h) for h in part.hashes]]}
    if isinstance(part, MerkleLeaves):
        return {"l": [list(part.leaves), [list(i) for i in part.items]]}
    states = [encode_kv_state(s) if isinstance(s, KvState) else encode_crdt(s) for s in part.states]
    return {"i": [states, list(part.want)]}


def _nat_list(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise ValueError("expected a list of integers")
    return tuple(_nat(v) for v in value)


def _pairs(value: Any, first: type) -> tuple[tuple[Any, int], ...]:
    if not isinstance(value, list):
        raise ValueError("expected a list of pairs")
    out = []
    for item in value:
        if not isinstance(item, list) or len(item) != 2 or not isinstance(item[0], first):
            raise ValueError("malformed pair")
        if first is int:
            _nat(item[0])
        if not isinstance(item[1], int) or isinstance(item[1], bool) or not 0 <= item[1] < 2**64:
            raise ValueError("hash must be a 64-bit unsigned integer")
        out.append((item[0], item[1]))
    return tuple(out)


def decode_part(obj: Any) -> MerklePart:
    if not isinstance(obj, dict) or len(obj) != 1:
        raise ValueError("merkle part must be an object with one of d, l, i")
    ((tag, body),) = obj.items()
    if not isinstance(body, list) or len(body) != (3 if tag == "d" else 2):
        raise ValueError(f"malformed merkle part {tag!r}")
    if tag == "d":
        level = _nat(body[0])
        if level > MAX_MERKLE_LEVEL:
            raise ValueError("merkle level out of range")
        return MerkleDigest(level, _nat_list(body[1]), _pairs(body[2], int))
    if tag == "l":
        return MerkleLeaves(_nat_list(body[0]), _pairs(body[1], str))
    if tag == "i":
        if not isinstance(body[0], list) or not isinstance(body[1], list):
            raise ValueError("merkle items must be [states, want]")
        states: list[KvState | CrdtUpdate] = []
        for item in body[0]:
            if not isinstance(item, dict) or item.get("k") not in ("ks", "c"):
                raise ValueError("merkle item must be a key or crdt state")
            states.append(decode_kv_state(item) if item["k"] == "ks" else decode_crdt(item))
        if not all(isinstance(w, str) for w in body[1]):
            raise ValueError("want must list item ids")
        return MerkleItems(tuple(states), tuple(body[1]))
    raise ValueError(f"unknown merkle part {tag!r}")
