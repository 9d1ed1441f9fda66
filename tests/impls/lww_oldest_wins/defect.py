"""Seeded defect: last-writer-wins lets the *oldest* of concurrent writes win.

``installed()`` patches the reference core and undoes it on exit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from unittest.mock import patch

from gossipcert.reference_node.core.messages import Sibling


def _oldest_first(self: Sibling) -> tuple[int, int, str]:
    return (-self.timestamp.wall_ms, -self.timestamp.logical, self.writer)


@contextmanager
def installed() -> Iterator[None]:
    with patch.object(Sibling, "version", property(_oldest_first)):
        yield
