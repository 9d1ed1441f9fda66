"""Seeded defect: a received broadcast is delivered but never relayed, and push-pull
carries no broadcasts, so a rumor goes one hop from its origin and no further."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from unittest.mock import patch

from gossipcert.reference_node.core.messages import BroadcastUpdate
from gossipcert.reference_node.core.node import Node


@contextmanager
def installed() -> Iterator[None]:
    apply, state = Node._apply_broadcast, Node._state

    def no_relay(self: Node, rumor: BroadcastUpdate, now_ms: int) -> bool:
        fresh = apply(self, rumor, now_ms)
        if fresh and rumor.origin != self.id:
            self.queue._entries.pop(rumor.subject, None)
        return fresh

    def no_broadcasts(self: Node) -> object:
        return replace(state(self), broadcasts=())

    with (
        patch.object(Node, "_apply_broadcast", no_relay),
        patch.object(Node, "_state", no_broadcasts),
    ):
        yield
