"""Seeded defect: a restarted node comes back at incarnation 0 and never refutes. It
does not restore the incarnation its earlier life used, and it ignores whatever the
cluster says about it, so the `suspect` or `dead` the others hold about its last life
(at an incarnation its new `alive` does not beat) shadows the new life for good."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from unittest.mock import patch

from gossipcert.reference_node.core.node import Node


def _ignored(self: Node, *args: object) -> None:
    return None


@contextmanager
def installed() -> Iterator[None]:
    with (
        patch.object(Node, "_about_self", _ignored),
        patch.object(Node, "restore_incarnation", _ignored),
    ):
        yield
