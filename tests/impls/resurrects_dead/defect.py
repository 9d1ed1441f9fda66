"""Seeded defect: a stale alive resurrects a dead member (alive beats dead at equal
incarnation), and push-pull states report dead members as alive."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any
from unittest.mock import patch

from gossipcert.reference_node.core import membership
from gossipcert.reference_node.core.messages import Status
from gossipcert.reference_node.core.node import Node


@contextmanager
def installed() -> Iterator[None]:
    supersedes, state = membership.supersedes, Node._state

    def stale_alive_wins(update: Any, known: Any) -> bool:
        if (
            update.incarnation == known.incarnation
            and update.status is Status.ALIVE
            and known.status is Status.DEAD
        ):
            return True
        return supersedes(update, known)

    def dead_as_alive(self: Node) -> Any:
        full = state(self)
        members = tuple(
            replace(m, status=Status.ALIVE) if m.status is Status.DEAD else m for m in full.members
        )
        return replace(full, members=members)

    with (
        patch.object(membership, "supersedes", stale_alive_wins),
        patch.object(Node, "_state", dead_as_alive),
    ):
        yield
