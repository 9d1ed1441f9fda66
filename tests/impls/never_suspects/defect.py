"""Seeded defect: a failed probe is ignored, so no member is ever suspected (nor dead)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from unittest.mock import patch

from gossipcert.reference_node.core.node import Node


def _ignore(self: Node, probe: object, now_ms: int) -> None:
    return None


@contextmanager
def installed() -> Iterator[None]:
    with patch.object(Node, "_probe_failed", _ignore):
        yield
