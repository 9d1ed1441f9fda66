"""Seeded defect: broadcasts are relayed late, and their receipt is stamped early.

Each broadcast a node receives from another member is held ``HOLD_MS`` (6 s) before the
node delivers and relays it: well past BCAST-DELIVERY's bound for the reference timing.
The node then stamps the delivery (``at_ms`` in ``GET /v1/broadcasts`` and in its
broadcast event) with the time the rumor first reached it, about when the broadcast was
sent, as if it had been delivered at once. With ``honest=True`` it stamps the time it
really delivered it instead: the same slow node, telling the truth.

``installed()`` patches the reference core and undoes the patch on exit.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from unittest.mock import patch

from gossipcert.reference_node.core.messages import BroadcastUpdate
from gossipcert.reference_node.core.node import Node

HOLD_MS = 6000


@contextmanager
def installed(honest: bool = False) -> Iterator[None]:
    apply = Node.__dict__["_apply_broadcast"]
    tick = Node.__dict__["tick"]
    next_deadline = Node.__dict__["next_deadline_ms"]
    # Per node: broadcast id -> (the rumor, when it first arrived).
    held: weakref.WeakKeyDictionary[Node, dict[str, tuple[BroadcastUpdate, int]]] = (
        weakref.WeakKeyDictionary()
    )

    def apply_late(self: Node, rumor: BroadcastUpdate, now_ms: int) -> bool:
        if rumor.origin == self.id or rumor.id in self.broadcasts:
            return bool(apply(self, rumor, now_ms))
        held.setdefault(self, {}).setdefault(rumor.id, (rumor, now_ms))
        return False

    def tick_releasing(self: Node, now_ms: int) -> None:
        waiting = held.get(self, {}) if not self.stopped else {}
        for bid, (rumor, arrived_ms) in sorted(waiting.items(), key=lambda kv: kv[1][1]):
            if now_ms >= arrived_ms + HOLD_MS:
                del waiting[bid]
                apply(self, rumor, now_ms if honest else arrived_ms)
        tick(self, now_ms)

    def next_deadline_releasing(self: Node) -> int:
        deadline = int(next_deadline(self))
        if self.stopped:
            return deadline
        releases = [at + HOLD_MS for _, at in held.get(self, {}).values()]
        return min([deadline, *releases])

    with (
        patch.object(Node, "_apply_broadcast", apply_late),
        patch.object(Node, "tick", tick_releasing),
        patch.object(Node, "next_deadline_ms", next_deadline_releasing),
    ):
        yield
