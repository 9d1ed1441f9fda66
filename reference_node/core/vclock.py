"""Version vectors whose entries are hybrid-clock timestamps, and the dots they cover.

A dot `(writer, timestamp)` names one write. Dots use the writer's HLC timestamp rather
than a per-key counter: HLC timestamps are unique and increasing per writer even across
a restart that lost the data and across tombstone garbage collection, so a fresh write
can never reuse a dot that some replica still remembers as already seen.

A version vector is stored as a tuple of `(writer, timestamp)` sorted by writer, so it is
hashable, comparable with `==` and has one canonical encoding.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from gossipcert.reference_node.core.hlc import Timestamp

Dot = tuple[str, Timestamp]
VClock = tuple[tuple[str, Timestamp], ...]

EMPTY: VClock = ()


def vv_get(vv: VClock, writer: str) -> Timestamp | None:
    for name, ts in vv:
        if name == writer:
            return ts
    return None


def covers(vv: VClock, dot: Dot) -> bool:
    """True when `vv` has seen the write named by `dot`."""
    seen = vv_get(vv, dot[0])
    return seen is not None and dot[1] <= seen


def vv_merge(*vectors: VClock) -> VClock:
    """Pointwise maximum."""
    merged: dict[str, Timestamp] = {}
    for vv in vectors:
        for writer, ts in vv:
            known = merged.get(writer)
            if known is None or ts > known:
                merged[writer] = ts
    return tuple(sorted(merged.items()))


def encode_vv(vv: VClock) -> list[list[Any]]:
    return [[writer, ts.wall_ms, ts.logical] for writer, ts in vv]


def decode_vv(obj: Any) -> VClock:
    """Strict: raises ValueError on anything but a list of [writer, wall_ms, logical]."""
    if not isinstance(obj, list):
        raise ValueError("version vector must be a list")
    entries: dict[str, Timestamp] = {}
    for item in obj:
        if (
            not isinstance(item, list)
            or len(item) != 3
            or not isinstance(item[0], str)
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in item[1:])
        ):
            raise ValueError("version vector entry must be [writer, wall_ms, logical]")
        if item[0] in entries:
            raise ValueError(f"writer {item[0]!r} appears twice in a version vector")
        entries[item[0]] = Timestamp(item[1], item[2])
    return tuple(sorted(entries.items()))


def encode_context(vv: VClock) -> str:
    """The opaque causal context handed to clients: url-safe base64 of the vector."""
    raw = json.dumps(encode_vv(vv), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_context(text: str) -> VClock:
    """Inverse of `encode_context`; ValueError names what is wrong."""
    if not isinstance(text, str):
        raise ValueError("context must be a string")
    if text == "":
        return EMPTY
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("context is not one this node issued") from exc
    return decode_vv(obj)
