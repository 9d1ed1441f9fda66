"""Seeded defect: an lww-register keeps the set with the *smallest* timestamp, so the
first value ever set stays and every later set is lost."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from unittest.mock import patch

from gossipcert.reference_node.core.crdt import LWWRegister


def _oldest(self: LWWRegister, other: LWWRegister) -> LWWRegister:
    if not self.writer:  # never set
        return other
    if not other.writer:
        return self
    return other if other.version < self.version else self


@contextmanager
def installed() -> Iterator[None]:
    with patch.object(LWWRegister, "merge", _oldest):
        yield
