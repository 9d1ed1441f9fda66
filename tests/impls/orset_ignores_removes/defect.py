"""Seeded defect: the or-set is a grow-only set: a remove is acknowledged and does
nothing, so a removed element stays on every member."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest.mock import patch

from gossipcert.reference_node.core.crdt import ORSet
from gossipcert.reference_node.core.hlc import Timestamp


@contextmanager
def installed() -> Iterator[None]:
    apply = ORSet.apply

    def grow_only(self: ORSet, op: str, value: Any, writer: str, ts: Timestamp) -> ORSet:
        if op == "remove":
            return self
        return apply(self, op, value, writer, ts)

    with patch.object(ORSet, "apply", grow_only):
        yield
