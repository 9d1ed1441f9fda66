"""JSON-ready dicts <-> message dataclasses, with strict validation of input.

Anything that arrives from the network is untrusted: every field is type-checked and a
malformed message raises `DecodeError`, which the runtime turns into a closed connection.
"""

from __future__ import annotations

import json
from typing import Any

from gossipcert.reference_node.core.hlc import Timestamp
from gossipcert.reference_node.core.messages import (
    Ack,
    BroadcastUpdate,
    CrdtUpdate,
    FullState,
    Gossip,
    KvState,
    KvUpdate,
    MemberUpdate,
    Merkle,
    Message,
    Nack,
    Ping,
    PingReq,
    Pull,
    PushPull,
    Status,
    Update,
)
from gossipcert.reference_node.core.state_codec import (
    decode_crdt,
    decode_kv_state,
    decode_part,
    encode_crdt,
    encode_kv_state,
    encode_part,
)


class DecodeError(ValueError):
    """A message from a peer that does not follow the wire format."""


def encode_timestamp(ts: Timestamp) -> list[int]:
    return [ts.wall_ms, ts.logical]


def encode_update(update: Update) -> dict[str, Any]:
    if isinstance(update, MemberUpdate):
        member: dict[str, Any] = {
            "k": "m",
            "id": update.member,
            "addr": update.address,
            "st": update.status.value,
            "inc": update.incarnation,
        }
        if update.by:
            member["by"] = update.by
        return member
    if isinstance(update, KvState):
        return encode_kv_state(update)
    if isinstance(update, CrdtUpdate):
        return encode_crdt(update)
    if isinstance(update, KvUpdate):
        out: dict[str, Any] = {
            "k": "kv",
            "key": update.key,
            "ts": encode_timestamp(update.timestamp),
            "w": update.writer,
        }
        if update.deleted:
            out["del"] = True
        else:
            out["v"] = update.value
        return out
    return {"k": "b", "id": update.id, "o": update.origin, "p": update.payload}


def update_size(update: Update) -> int:
    """Encoded size, used to keep piggyback payloads within a byte budget."""
    return len(json.dumps(encode_update(update), separators=(",", ":")))


def encode_state(state: FullState) -> dict[str, Any]:
    return {
        "members": [encode_update(u) for u in state.members],
        "kv": [encode_update(u) for u in state.kv],
        "broadcasts": [encode_update(u) for u in state.broadcasts],
    }


def encode_message(msg: Message) -> dict[str, Any]:
    out: dict[str, Any] = {
        "t": msg.kind,
        "from": msg.sender,
        "addr": msg.sender_addr,
        "hlc": encode_timestamp(msg.hlc),
    }
    if msg.updates:
        out["u"] = [encode_update(u) for u in msg.updates]
    if isinstance(msg, Ping):
        out["seq"] = msg.seq
        out["target"] = msg.target
    elif isinstance(msg, Ack | Nack):
        out["seq"] = msg.seq
    elif isinstance(msg, PingReq):
        out["seq"] = msg.seq
        out["target"] = msg.target
        out["target_addr"] = msg.target_addr
    elif isinstance(msg, Merkle):
        out["p"] = encode_part(msg.part)
    elif isinstance(msg, Pull):
        out["sum"] = list(msg.summary)
    elif isinstance(msg, PushPull):
        out["state"] = encode_state(msg.state)
        out["join"] = msg.join
        out["reply"] = msg.reply
    return out


# ---- decoding -------------------------------------------------------------------------


def _field(obj: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in obj:
        raise DecodeError(f"missing field {name!r}")
    value = obj[name]
    # bool is an int subclass; never accept it where a number is expected.
    if isinstance(value, bool) and kind is not bool:
        raise DecodeError(f"field {name!r} has the wrong type")
    if not isinstance(value, kind):
        raise DecodeError(f"field {name!r} has the wrong type")
    return value


def _int(obj: dict[str, Any], name: str) -> int:
    value: int = _field(obj, name, int)
    if value < 0:
        raise DecodeError(f"field {name!r} must not be negative")
    return value


def _timestamp(value: Any) -> Timestamp:
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
    ):
        raise DecodeError("bad timestamp")
    return Timestamp(value[0], value[1])


def decode_update(obj: Any) -> Update:
    if not isinstance(obj, dict):
        raise DecodeError("update is not an object")
    kind = obj.get("k")
    if kind == "m":
        try:
            status = Status(_field(obj, "st", str))
        except ValueError as exc:
            raise DecodeError("unknown member status") from exc
        return MemberUpdate(
            member=_field(obj, "id", str),
            address=_field(obj, "addr", str),
            status=status,
            incarnation=_int(obj, "inc"),
            by=_field(obj, "by", str) if "by" in obj else "",
        )
    if kind == "kv":
        deleted = bool(obj.get("del", False))
        if not deleted and "v" not in obj:
            raise DecodeError("kv update without a value")
        return KvUpdate(
            key=_field(obj, "key", str),
            value=None if deleted else obj["v"],
            deleted=deleted,
            timestamp=_timestamp(obj.get("ts")),
            writer=_field(obj, "w", str),
        )
    if kind in ("ks", "c"):
        try:
            return decode_kv_state(obj) if kind == "ks" else decode_crdt(obj)
        except ValueError as exc:
            raise DecodeError(str(exc)) from exc
    if kind == "b":
        if "p" not in obj:
            raise DecodeError("broadcast without a payload")
        return BroadcastUpdate(
            id=_field(obj, "id", str), origin=_field(obj, "o", str), payload=obj["p"]
        )
    raise DecodeError(f"unknown update kind {kind!r}")


def _updates(value: Any, of: type) -> tuple[Any, ...]:
    if not isinstance(value, list):
        raise DecodeError("updates must be a list")
    decoded = tuple(decode_update(item) for item in value)
    if not all(isinstance(u, of) for u in decoded):
        raise DecodeError(f"expected only {of.__name__} entries")
    return decoded


def decode_state(obj: Any) -> FullState:
    if not isinstance(obj, dict):
        raise DecodeError("state is not an object")
    return FullState(
        members=_updates(obj.get("members", []), MemberUpdate),
        kv=_updates(obj.get("kv", []), KvUpdate),
        broadcasts=_updates(obj.get("broadcasts", []), BroadcastUpdate),
    )


def decode_message(obj: Any) -> Message:
    if not isinstance(obj, dict):
        raise DecodeError("message is not an object")
    kind = obj.get("t")
    header: dict[str, Any] = {
        "sender": _field(obj, "from", str),
        "sender_addr": _field(obj, "addr", str),
        "hlc": _timestamp(obj.get("hlc")),
        "updates": _updates(obj.get("u", []), object),
    }
    if kind == Ping.kind:
        return Ping(**header, seq=_int(obj, "seq"), target=_field(obj, "target", str))
    if kind == Ack.kind:
        return Ack(**header, seq=_int(obj, "seq"))
    if kind == Nack.kind:
        return Nack(**header, seq=_int(obj, "seq"))
    if kind == PingReq.kind:
        return PingReq(
            **header,
            seq=_int(obj, "seq"),
            target=_field(obj, "target", str),
            target_addr=_field(obj, "target_addr", str),
        )
    if kind == Gossip.kind:
        return Gossip(**header)
    if kind == PushPull.kind:
        return PushPull(
            **header,
            state=decode_state(obj.get("state")),
            join=bool(obj.get("join", False)),
            reply=bool(obj.get("reply", False)),
        )
    if kind == Merkle.kind:
        try:
            return Merkle(**header, part=decode_part(obj.get("p")))
        except ValueError as exc:
            raise DecodeError(str(exc)) from exc
    if kind == Pull.kind:
        summary = obj.get("sum", [])
        if not isinstance(summary, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**32 for v in summary
        ):
            raise DecodeError("pull summary must be a list of 32-bit digests")
        return Pull(**header, summary=tuple(summary))
    raise DecodeError(f"unknown message type {kind!r}")
