"""Seeded defect: last-writer-wins breaks timestamp ties towards the *smaller* node id.

``installed()`` patches the reference core and undoes it on exit, so the simulator
(``harness.drivers.simulated``) can run it next to the unpatched core in one process.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest.mock import patch

from gossipcert.reference_node.core.messages import Sibling


@functools.total_ordering
class _Reversed:
    """Orders strings backwards."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reversed) and other.text == self.text

    def __lt__(self, other: _Reversed) -> bool:
        return self.text > other.text

    def __hash__(self) -> int:
        return hash(self.text)


def _wrong_version(self: Sibling) -> tuple[int, int, Any]:
    return (self.timestamp.wall_ms, self.timestamp.logical, _Reversed(self.writer))


@contextmanager
def installed() -> Iterator[None]:
    with patch.object(Sibling, "version", property(_wrong_version)):
        yield
