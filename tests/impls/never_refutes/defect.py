"""Seeded defect: a member told it is suspected (or dead) never refutes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from gossipcert.reference_node.core.node import Node


def _silent(self: Node, update: object, now_ms: int) -> None:
    return None


@contextmanager
def installed() -> Iterator[None]:
    original = Node._about_self
    Node._about_self = _silent  # type: ignore[method-assign]
    try:
        yield
    finally:
        Node._about_self = original  # type: ignore[method-assign]
