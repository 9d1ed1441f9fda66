"""Seeded defect: write coalescing gone wrong. A put on a key that still has an update
waiting in the gossip queue (a recent write, or one just received and being relayed) is
folded into that queued update, which keeps the older value: the put is acknowledged
with its timestamp but never applied nor sent anywhere."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest.mock import patch

from gossipcert.reference_node.core.kv import write
from gossipcert.reference_node.core.messages import KvState, Sibling
from gossipcert.reference_node.core.node import Node
from gossipcert.reference_node.core.vclock import EMPTY, VClock


@contextmanager
def installed() -> Iterator[None]:
    kv_put = Node.kv_put

    def coalescing_put(
        self: Node, key: str, value: Any, now_ms: int, context: VClock | None = None
    ) -> KvState:
        if self.queue.transmits("k:" + key) is None:
            return kv_put(self, key, value, now_ms, context)
        seen = None if self.kv.policy == "lww" else (EMPTY if context is None else context)
        sibling = Sibling(self.id, self.clock.now(now_ms), value, False)
        return write(self.kv.get(key), key, sibling, seen, self.kv.policy)  # never stored

    with patch.object(Node, "kv_put", coalescing_put):
        yield
