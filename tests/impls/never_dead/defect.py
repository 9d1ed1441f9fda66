"""Seeded defect: a suspected member is never declared dead (its suspicion never expires).

``installed()`` patches the reference core and undoes it on exit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from gossipcert.reference_node.core.suspicion import Suspicion


def _never(self: Suspicion) -> int:
    return self.started_ms + 10**12


@contextmanager
def installed() -> Iterator[None]:
    original = Suspicion.__dict__["deadline_ms"]
    Suspicion.deadline_ms = _never  # type: ignore[method-assign]
    try:
        yield
    finally:
        Suspicion.deadline_ms = original  # type: ignore[method-assign]
