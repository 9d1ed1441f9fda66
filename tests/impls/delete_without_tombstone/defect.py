"""Seeded defect: a delete removes the key from the local store and leaves no tombstone,
and nothing is gossiped: the other replicas keep the value, and anti-entropy copies it
straight back to the node that deleted it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from unittest.mock import patch

from gossipcert.reference_node.core.kv import write
from gossipcert.reference_node.core.messages import KvState, Sibling
from gossipcert.reference_node.core.node import Node
from gossipcert.reference_node.core.vclock import VClock


@contextmanager
def installed() -> Iterator[None]:
    def forget(self: Node, key: str, now_ms: int, context: VClock | None = None) -> KvState:
        store = self.kv
        answer = write(store.get(key), key, Sibling(self.id, self.clock.now(now_ms), None, True),
                       None if store.policy == "lww" else context, store.policy)
        if store._entries.pop(key, None) is not None:
            store._tombstones.pop(key, None)
            store._digest = None
            if store._on_change is not None:
                store._on_change(key, None)
        return answer

    with patch.object(Node, "kv_delete", forget):
        yield
