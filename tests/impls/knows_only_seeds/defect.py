"""Seeded defect: membership is learnt first hand only. An update about a member we do
not know yet is dropped unless that member sent it itself, so a joiner ignores the
member list its seed answers with, and nobody learns a third party by gossip: every
node ends up knowing its seed and the nodes that contacted it, not the whole cluster."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest.mock import patch

from gossipcert.reference_node.core.messages import MemberUpdate, Message
from gossipcert.reference_node.core.node import Node


@contextmanager
def installed() -> Iterator[None]:
    receive, apply_member = Node.receive, Node._apply_member

    def remembering_sender(self: Node, message: Message, now_ms: int) -> None:
        self._sender = message.sender  # type: ignore[attr-defined]
        try:
            receive(self, message, now_ms)
        finally:
            self._sender = None  # type: ignore[attr-defined]

    def first_hand(self: Node, update: MemberUpdate, now_ms: int, **kwargs: Any) -> None:
        sender = getattr(self, "_sender", None)
        if (
            sender is not None
            and update.member not in (self.id, sender)
            and self.members.get(update.member) is None
        ):
            return
        apply_member(self, update, now_ms, **kwargs)

    with (
        patch.object(Node, "receive", remembering_sender),
        patch.object(Node, "_apply_member", first_hand),
    ):
        yield
