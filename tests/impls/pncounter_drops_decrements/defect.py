"""Seeded defect: a pn-counter merge joins the increments but keeps only the local
decrements, so a decrement made on one member never reaches the others."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from unittest.mock import patch

from gossipcert.reference_node.core.crdt import PNCounter, _merge_counts


def _own_decrements(self: PNCounter, other: PNCounter) -> PNCounter:
    return PNCounter(_merge_counts(self.increments, other.increments), self.decrements)


@contextmanager
def installed() -> Iterator[None]:
    with patch.object(PNCounter, "merge", _own_decrements):
        yield
