"""Authenticated encryption of gossip frames with a rotating keyring.

A sealed body is `version (1) | nonce (12) | AES-GCM(stamp_ms (8) | plaintext)`, with the
version byte as associated data. The primary key seals; every installed key is tried to
open, so a rotation (install everywhere, use everywhere, remove everywhere) loses nothing.
The stamp inside the ciphertext bounds how old a frame may be; a cache of the nonces
seen within that window rejects exact replays.

Sans-IO: nonces and the time are passed in by the driver.
"""

from __future__ import annotations

import base64
import binascii
from collections import OrderedDict
from collections.abc import Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = 1
NONCE_BYTES = 12
STAMP_BYTES = 8
TAG_BYTES = 16
OVERHEAD = 1 + NONCE_BYTES + STAMP_BYTES + TAG_BYTES
KEY_SIZES = (16, 24, 32)
"""AES-128, -192 or -256, as memberlist accepts."""
REPLAY_WINDOW_MS = 60_000
"""Frames stamped further than this from our clock are refused (either direction)."""


class KeyringError(ValueError):
    """A key that cannot be installed, used or removed; the message says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class FrameRejected(ValueError):
    """An inbound frame that must be dropped; `reason` names the metric it counts in."""

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(message or reason)
        self.reason = reason


def parse_key(text: str) -> bytes:
    """A base64 key of 16, 24 or 32 bytes."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyringError("bad_key", f"key is not valid base64: {exc}") from exc
    if len(key) not in KEY_SIZES:
        raise KeyringError("bad_key", f"key must decode to 16, 24 or 32 bytes, got {len(key)}")
    return key


def encode_key(key: bytes) -> str:
    return base64.b64encode(key).decode()


class ReplayGuard:
    """Nonces seen within the window; an exact replay inside it is refused and one
    outside it is already refused by its stamp."""

    def __init__(self, window_ms: int = REPLAY_WINDOW_MS, max_entries: int = 500_000) -> None:
        self.window_ms = window_ms
        self._max_entries = max_entries
        self._seen: OrderedDict[bytes, int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def check(self, nonce: bytes, stamp_ms: int, now_ms: int) -> None:
        if abs(now_ms - stamp_ms) > self.window_ms:
            raise FrameRejected("stale", f"frame stamped {now_ms - stamp_ms} ms ago")
        self._expire(now_ms)
        if nonce in self._seen:
            raise FrameRejected("replayed", "nonce already seen")
        self._seen[nonce] = now_ms + self.window_ms
        if len(self._seen) > self._max_entries:
            # Forgetting the oldest nonce early is safe only while its stamp is also
            # out of the window; under such a flood, shrinking the memory is the choice.
            self._seen.popitem(last=False)

    def _expire(self, now_ms: int) -> None:
        while self._seen:
            nonce, until = next(iter(self._seen.items()))
            if until > now_ms:
                return
            del self._seen[nonce]


class Keyring:
    """Installed keys, primary first."""

    def __init__(self, keys: Iterable[bytes]) -> None:
        self._keys: list[bytes] = []
        self._ciphers: dict[bytes, AESGCM] = {}
        for key in keys:
            self.install(key)
        if not self._keys:
            raise KeyringError("bad_key", "a keyring needs at least one key")

    @property
    def primary(self) -> bytes:
        return self._keys[0]

    @property
    def keys(self) -> list[bytes]:
        return list(self._keys)

    def install(self, key: bytes) -> None:
        """Add a key for opening frames; the primary does not change."""
        if len(key) not in KEY_SIZES:
            raise KeyringError("bad_key", f"key must be 16, 24 or 32 bytes, got {len(key)}")
        if key not in self._ciphers:
            self._keys.append(key)
            self._ciphers[key] = AESGCM(key)

    def use(self, key: bytes) -> None:
        """Make an installed key the primary (the one that seals)."""
        if key not in self._ciphers:
            raise KeyringError("unknown_key", "key is not installed")
        self._keys.remove(key)
        self._keys.insert(0, key)

    def remove(self, key: bytes) -> None:
        if key not in self._ciphers:
            raise KeyringError("unknown_key", "key is not installed")
        if key == self.primary:
            raise KeyringError(
                "primary_key", "the primary key cannot be removed; use another first"
            )
        self._keys.remove(key)
        del self._ciphers[key]

    def seal(self, plaintext: bytes, nonce: bytes, now_ms: int) -> bytes:
        if len(nonce) != NONCE_BYTES:
            raise ValueError(f"nonce must be {NONCE_BYTES} bytes")
        header = bytes([VERSION])
        stamped = max(0, now_ms).to_bytes(STAMP_BYTES, "big") + plaintext
        return header + nonce + self._ciphers[self.primary].encrypt(nonce, stamped, header)

    def open(self, body: bytes, now_ms: int, guard: ReplayGuard | None = None) -> bytes:
        """The plaintext of a sealed body, or FrameRejected naming why not."""
        if not body:
            raise FrameRejected("truncated", "empty frame")
        if body[0] != VERSION:
            if body[:1] in (b"{", b"["):
                raise FrameRejected("unencrypted", "plaintext frame while encryption is on")
            raise FrameRejected("malformed", f"unknown frame version {body[0]}")
        if len(body) < OVERHEAD:
            raise FrameRejected("truncated", f"sealed frame of {len(body)} bytes")
        header, nonce, sealed = body[:1], body[1 : 1 + NONCE_BYTES], body[1 + NONCE_BYTES :]
        for key in self._keys:
            try:
                stamped = self._ciphers[key].decrypt(nonce, sealed, header)
            except InvalidTag:
                continue
            stamp_ms = int.from_bytes(stamped[:STAMP_BYTES], "big")
            if guard is not None:
                guard.check(nonce, stamp_ms, now_ms)
            return stamped[STAMP_BYTES:]
        raise FrameRejected("decrypt_failed", "no installed key opens the frame")
