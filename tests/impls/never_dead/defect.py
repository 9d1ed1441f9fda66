"""Seeded defect: a suspected member is never declared dead (its suspicion never expires).

``installed()`` patches the reference core and undoes it on exit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from unittest.mock import patch

from gossipcert.reference_node.core.suspicion import Suspicion


def _never(self: Suspicion) -> int:
    return self.started_ms + 10**12


@contextmanager
def installed() -> Iterator[None]:
    with patch.object(Suspicion, "deadline_ms", _never):
        yield
