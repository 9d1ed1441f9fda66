"""Length-prefixed frames: 4-byte big-endian length, then a JSON body.

Sans-IO like the core: bytes in, whole frames out, so it is tested without sockets.
"""

from __future__ import annotations

import json
from typing import Any

MAX_FRAME_BYTES = 4 * 1024 * 1024
_HEADER = 4


class FrameError(ValueError):
    """The peer sent something that is not a valid frame; drop the connection."""


def encode_frame(obj: Any) -> bytes:
    body = json.dumps(obj, separators=(",", ":")).encode()
    if len(body) > MAX_FRAME_BYTES:
        raise FrameError(f"frame of {len(body)} bytes exceeds {MAX_FRAME_BYTES}")
    return len(body).to_bytes(_HEADER, "big") + body


def decode_body(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise FrameError(f"frame is not JSON: {exc}") from exc


class FrameDecoder:
    def __init__(self, max_frame: int = MAX_FRAME_BYTES) -> None:
        self._buffer = bytearray()
        self._max_frame = max_frame

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return every frame body now complete."""
        self._buffer += data
        frames: list[bytes] = []
        while len(self._buffer) >= _HEADER:
            length = int.from_bytes(self._buffer[:_HEADER], "big")
            if length == 0 or length > self._max_frame:
                raise FrameError(f"bad frame length {length}")
            if len(self._buffer) < _HEADER + length:
                break
            frames.append(bytes(self._buffer[_HEADER : _HEADER + length]))
            del self._buffer[: _HEADER + length]
        return frames
