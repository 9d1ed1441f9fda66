"""Seeded defect: acks of one probe in four are lost. Pending probes are kept in a
ring of four slots indexed by sequence number, and slot 0 reads as empty, so an ack
(direct or relayed by a helper) whose sequence number is a multiple of four matches no
probe: that probe fails and its live target is suspected."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from unittest.mock import patch

from gossipcert.reference_node.core.messages import Ack
from gossipcert.reference_node.core.node import Node


@contextmanager
def installed() -> Iterator[None]:
    on_ack = Node._on_ack

    def lossy_ring(self: Node, ack: Ack, now_ms: int) -> None:
        if ack.seq % 4 == 0:
            return
        on_ack(self, ack, now_ms)

    with patch.object(Node, "_on_ack", lossy_ring):
        yield
