"""Seeded defect: a graceful leave tells nobody. The leaving node marks itself left in
its own table and goes quiet at once, without gossiping the `left`: the others find it
silent, suspect it and declare it dead, as if it had crashed."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from unittest.mock import patch

from gossipcert.reference_node.core.membership import Status
from gossipcert.reference_node.core.node import Node


def _quit(self: Node, now_ms: int) -> None:
    if self.leaving:
        return
    me = self.me
    self.members.set(dataclasses.replace(me, status=Status.LEFT, incarnation=me.incarnation + 1))
    self._join_seeds = None
    self._stopped = True


@contextmanager
def installed() -> Iterator[None]:
    with patch.object(Node, "leave", _quit):
        yield
