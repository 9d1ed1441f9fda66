"""Seeded defect: every local key/value write is stamped one hour in the future.

The hybrid logical clock stamps a local PUT or DELETE from the wall time it is handed;
this defect hands it the wall time plus ``AHEAD_MS``. The stamp is the write's LWW
version, so the node really wins every race it takes part in with it (the PUT and DELETE
replies report it as ``timestamp``), and since every node observes the timestamps it
merges, the whole cluster's clock is dragged an hour ahead with it.

``installed()`` patches the reference core and undoes the patch on exit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest.mock import patch

from gossipcert.reference_node.core.node import Node

AHEAD_MS = 3_600_000


@contextmanager
def installed() -> Iterator[None]:
    original = Node.__dict__["_local_write"]

    def stamped_late(self: Node, key: str, value: Any, deleted: bool, now_ms: int,
                     seen: Any) -> Any:
        return original(self, key, value, deleted, now_ms + AHEAD_MS, seen)

    with patch.object(Node, "_local_write", stamped_late):
        yield
