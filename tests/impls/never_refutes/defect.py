"""Seeded defect: a member told it is suspected (or dead) never refutes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from unittest.mock import patch

from gossipcert.reference_node.core.node import Node


def _silent(self: Node, update: object, now_ms: int) -> None:
    return None


@contextmanager
def installed() -> Iterator[None]:
    with patch.object(Node, "_about_self", _silent):
        yield
