"""Seeded defect: last-writer-wins lets the *oldest* of concurrent writes win.

``installed()`` patches the reference core and undoes it on exit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from gossipcert.reference_node.core.messages import Sibling


def _oldest_first(self: Sibling) -> tuple[int, int, str]:
    return (-self.timestamp.wall_ms, -self.timestamp.logical, self.writer)


@contextmanager
def installed() -> Iterator[None]:
    original = Sibling.__dict__["version"]
    Sibling.version = property(_oldest_first)  # type: ignore[assignment,method-assign]
    try:
        yield
    finally:
        Sibling.version = original  # type: ignore[method-assign]
