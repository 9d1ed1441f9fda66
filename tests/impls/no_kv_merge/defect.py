"""Seeded defect: a replica never merges another's key/value state. Entries arriving by
gossip, push-pull or the Merkle exchange are dropped on receipt, so each node holds only
the writes made on it and the replicas never converge."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest.mock import patch

from gossipcert.reference_node.core.node import Node


def _dropped(self: Node, entry: Any, now_ms: int, **kwargs: Any) -> None:
    return None


@contextmanager
def installed() -> Iterator[None]:
    with patch.object(Node, "_apply_kv", _dropped):
        yield
