"""Length-prefixed frames: 4-byte big-endian length, then a body; and datagrams.

The body is JSON, or, with a keyring, a sealed JSON (`core/keyring.py`). A datagram is
one such body alone (UDP keeps its boundaries), sealed the same way, each with its own
nonce. Sans-IO like the core: bytes in, messages and drop reasons out, so the whole
inbound path is tested (and fuzzed) without sockets.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gossipcert.reference_node.core.codec import DecodeError, decode_message
from gossipcert.reference_node.core.keyring import FrameRejected, Keyring, ReplayGuard
from gossipcert.reference_node.core.messages import Message

MAX_FRAME_BYTES = 4 * 1024 * 1024
_HEADER = 4
MAX_DATAGRAM_BYTES = 1400
"""memberlist's UDP payload limit (docs/protocol-notes.md): a message that would be a
larger datagram goes over TCP instead."""
DATAGRAM_KINDS = frozenset({"ping", "ack", "nack", "ping-req", "gossip", "pull"})
"""What memberlist sends as datagrams: probes, their acks, indirect probes and gossip
(with the reference node's pull requests, the other half of its gossip rounds). Push-pull
and Merkle exchanges (state sync) always go over TCP."""


class FrameError(ValueError):
    """The peer sent something that is not a valid frame; drop the connection."""

    def __init__(self, message: str, reason: str = "malformed") -> None:
        super().__init__(message)
        self.reason = reason


def encode_frame(obj: Any, seal: Callable[[bytes], bytes] | None = None) -> bytes:
    body = json.dumps(obj, separators=(",", ":")).encode()
    if seal is not None:
        body = seal(body)
    if len(body) > MAX_FRAME_BYTES:
        raise FrameError(f"frame of {len(body)} bytes exceeds {MAX_FRAME_BYTES}", "oversized")
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

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete frame: a connection closed now truncated it."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return every frame body now complete."""
        self._buffer += data
        frames: list[bytes] = []
        while len(self._buffer) >= _HEADER:
            length = int.from_bytes(self._buffer[:_HEADER], "big")
            if length == 0:
                raise FrameError("empty frame")
            if length > self._max_frame:
                raise FrameError(f"frame length {length} exceeds {self._max_frame}", "oversized")
            if len(self._buffer) < _HEADER + length:
                break
            frames.append(bytes(self._buffer[_HEADER : _HEADER + length]))
            del self._buffer[: _HEADER + length]
        return frames


@dataclass
class Inbound:
    """What one chunk of bytes from a peer turned into."""

    messages: list[tuple[Message, int]] = field(default_factory=list)
    """Decoded messages with their size on the wire."""
    dropped: list[str] = field(default_factory=list)
    """One reason per dropped frame (a metric name)."""
    close: bool = False
    """The byte stream itself is broken (bad length): no later frame can be trusted."""


class InboundStream:
    """The inbound path of one connection: framing, then opening, then decoding.

    The first frame that fails (bad length, will not open, replayed, not a message) is
    dropped and counted, and the connection is closed: an honest peer never sends one,
    and it reconnects on its next message.
    """

    def __init__(
        self,
        keyring: Callable[[], Keyring | None],
        guard: ReplayGuard,
        max_frame: int = MAX_FRAME_BYTES,
    ) -> None:
        self._keyring = keyring
        self._guard = guard
        self._decoder = FrameDecoder(max_frame)
        self._closed = False

    @property
    def truncated(self) -> bool:
        return self._decoder.buffered > 0

    def feed(self, data: bytes, now_ms: int) -> Inbound:
        out = Inbound()
        if self._closed:
            return out
        try:
            bodies = self._decoder.feed(data)
        except FrameError as exc:
            self._closed = True
            out.close = True
            out.dropped.append(exc.reason)
            return out
        for body in bodies:
            size = len(body) + _HEADER
            try:
                keyring = self._keyring()
                plain = body if keyring is None else keyring.open(body, now_ms, self._guard)
                out.messages.append((decode_message(decode_body(plain)), size))
            except FrameRejected as exc:
                out.dropped.append(exc.reason)
            except (FrameError, DecodeError):
                out.dropped.append("malformed")
            else:
                continue
            # Whoever sent that is broken or hostile: read nothing more from it.
            self._closed = out.close = True
            break
        return out


def encode_datagram(obj: Any, seal: Callable[[bytes], bytes] | None = None) -> bytes:
    """One message as one datagram's payload: its JSON body, sealed with a keyring."""
    body = json.dumps(obj, separators=(",", ":")).encode()
    return body if seal is None else seal(body)


def decode_datagram(
    data: bytes, keyring: Keyring | None, guard: ReplayGuard, now_ms: int
) -> tuple[Message | None, str | None]:
    """The message one datagram carries, or None and the reason it is dropped (a metric
    name). Anyone can send a datagram to the gossip port: nothing in it may raise."""
    if not data:
        return None, "truncated"
    if len(data) > MAX_FRAME_BYTES:
        return None, "oversized"
    try:
        plain = data if keyring is None else keyring.open(data, now_ms, guard)
        return decode_message(decode_body(plain)), None
    except FrameRejected as exc:
        return None, exc.reason
    except (FrameError, DecodeError, UnicodeDecodeError):
        return None, "malformed"
