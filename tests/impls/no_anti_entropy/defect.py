"""Seeded defect: no periodic anti-entropy (push-pull and Merkle exchanges never run)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from unittest.mock import patch

from gossipcert.reference_node.core.node import Node, _advance


def _never(self: Node, now_ms: int) -> None:
    """Keep the timer ticking (so the driver's clock moves on), exchange nothing."""
    if now_ms >= self._next_push_pull_ms:
        interval = self.config.push_pull_interval_ms
        self._next_push_pull_ms = _advance(self._next_push_pull_ms, interval, now_ms)


@contextmanager
def installed() -> Iterator[None]:
    with patch.object(Node, "_tick_push_pull", _never):
        yield
