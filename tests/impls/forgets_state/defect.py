"""Seeded defect: a restarted node forgets its state and refuses to learn it back: it
drops persisted state and every key/value entry written before it booted."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest.mock import patch

from gossipcert.reference_node.core.node import Node


@contextmanager
def installed() -> Iterator[None]:
    init, apply_kv = Node.__init__, Node._apply_kv

    def born(self: Node, config: Any, now_ms: int) -> None:
        init(self, config, now_ms)
        self._born_ms = now_ms  # type: ignore[attr-defined]

    def only_new(self: Node, entry: Any, now_ms: int, **kwargs: Any) -> None:
        if entry.timestamp.wall_ms < getattr(self, "_born_ms", 0):
            return
        apply_kv(self, entry, now_ms, **kwargs)

    def nothing(self: Node, *args: Any) -> None:
        return None

    with (
        patch.object(Node, "__init__", born),
        patch.object(Node, "_apply_kv", only_new),
        patch.object(Node, "restore", nothing),
        patch.object(Node, "restore_writes", nothing),
    ):
        yield
