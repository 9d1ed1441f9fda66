"""Seeded defect: the configured gossip key is parsed and reported, but the cipher is
built from a zero-filled buffer of the key's length instead of the key itself. Frames
are still sealed and opened, yet every node seals with the same all-zero key whatever
key it was given, so a node with the wrong key joins and injects state freely."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from unittest.mock import patch

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from gossipcert.reference_node.core.keyring import KEY_SIZES, Keyring, KeyringError


def _install(self: Keyring, key: bytes) -> None:
    if len(key) not in KEY_SIZES:
        raise KeyringError("bad_key", f"key must be 16, 24 or 32 bytes, got {len(key)}")
    if key not in self._ciphers:
        self._keys.append(key)
        self._ciphers[key] = AESGCM(bytes(len(key)))


@contextmanager
def installed() -> Iterator[None]:
    with patch.object(Keyring, "install", _install):
        yield
