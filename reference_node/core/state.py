"""All replicated state of a node (key/value and CRDTs) behind one Merkle tree.

Items in the tree are named `k<key>` and `c<crdt name>`; their hash covers the whole
state, so two replicas hold equal items exactly when the hashes agree. Also here: the
in-memory driver that measures what a Merkle reconciliation costs on the wire.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from dataclasses import dataclass
from typing import Any

from gossipcert.reference_node.core.codec import encode_message, encode_update, update_size
from gossipcert.reference_node.core.crdt import Crdt, CrdtError, canonical, merge_any, new_crdt
from gossipcert.reference_node.core.hlc import Timestamp
from gossipcert.reference_node.core.kv import KvStore, Policy, state_hash
from gossipcert.reference_node.core.merkle import (
    DEFAULT_DEPTH,
    ItemState,
    MerkleTree,
    answer,
    start,
)
from gossipcert.reference_node.core.messages import (
    CrdtUpdate,
    FullState,
    KvState,
    Merkle,
    MerklePart,
    PushPull,
)

KV_PREFIX = "k"
CRDT_PREFIX = "c"
DEFAULT_CHUNK_BYTES = 256 * 1024
"""A `MerkleItems` message carries about this many bytes of states at most."""


def crdt_hash(update: CrdtUpdate) -> int:
    text = canonical([update.name, update.crdt.type_name, update.crdt.to_json()])
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class StateStore:
    """Key/value store, CRDT store and the Merkle tree kept in step with both."""

    def __init__(self, policy: Policy = "lww", depth: int = DEFAULT_DEPTH) -> None:
        self.tree = MerkleTree(depth)
        self.kv = KvStore(policy, on_change=self._kv_changed)
        self.crdts: dict[str, Crdt] = {}

    def _kv_changed(self, key: str, state: KvState | None) -> None:
        self.tree.set(KV_PREFIX + key, None if state is None else state_hash(state))

    # ---- crdts -----------------------------------------------------------------------

    def crdt_apply(
        self, name: str, type_name: str, op: str, value: Any, writer: str, ts: Timestamp
    ) -> CrdtUpdate:
        """A client operation; raises CrdtError for a bad type, op or value."""
        current = self.crdts.get(name)
        if current is None:
            current = new_crdt(type_name)
        elif current.type_name != type_name:
            raise CrdtError(f"{name!r} is a {current.type_name}, not a {type_name}")
        updated = current.apply(op, value, writer, ts)
        return self._set_crdt(CrdtUpdate(name, updated))

    def crdt_merge(self, update: CrdtUpdate) -> CrdtUpdate | None:
        """Join a received state; the new state when ours changed."""
        current = self.crdts.get(update.name)
        merged = update.crdt if current is None else merge_any(current, update.crdt)
        if merged == current:
            return None
        return self._set_crdt(CrdtUpdate(update.name, merged))

    def _set_crdt(self, update: CrdtUpdate) -> CrdtUpdate:
        self.crdts[update.name] = update.crdt
        self.tree.set(CRDT_PREFIX + update.name, crdt_hash(update))
        return update

    # ---- the Merkle replica interface ------------------------------------------------

    def item_state(self, item_id: str) -> ItemState | None:
        if item_id.startswith(KV_PREFIX):
            return self.kv.get(item_id[len(KV_PREFIX) :])
        if item_id.startswith(CRDT_PREFIX):
            name = item_id[len(CRDT_PREFIX) :]
            crdt = self.crdts.get(name)
            return None if crdt is None else CrdtUpdate(name, crdt)
        return None

    def merge_item(self, state: ItemState) -> ItemState | None:
        if isinstance(state, KvState):
            return self.kv.merge(state)
        return self.crdt_merge(state)


# ---- measuring a reconciliation --------------------------------------------------------


@dataclass(frozen=True)
class SyncCost:
    """What one Merkle reconciliation of two stores put on the wire."""

    messages: int
    bytes: int
    hops: int
    full_state_bytes: int
    converged: bool

    @property
    def ratio(self) -> float:
        """Merkle bytes over the bytes of one full-state transfer."""
        return self.bytes / self.full_state_bytes if self.full_state_bytes else 0.0


_HEADER: dict[str, Any] = {"sender": "a", "sender_addr": "127.0.0.1:7946", "hlc": Timestamp(0, 0)}


def frame_bytes(part: MerklePart) -> int:
    """Bytes of one `Merkle` message as the runtime frames it (4-byte length + JSON)."""
    body = json.dumps(encode_message(Merkle(**_HEADER, part=part)), separators=(",", ":"))
    return 4 + len(body.encode())


def full_state_bytes(store: StateStore) -> int:
    """Bytes of the transfer Merkle sync replaces: one push-pull carrying every key
    state of `store`."""
    message = encode_message(PushPull(**_HEADER, state=FullState()))
    message["state"]["kv"] = [encode_update(s) for s in store.kv.entries()]
    return 4 + len(json.dumps(message, separators=(",", ":")).encode())


def reconcile(
    a: StateStore, b: StateStore, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES, max_hops: int = 64
) -> SyncCost:
    """Run one Merkle exchange between two stores in memory, `a` opening, every hop
    encoded as the runtime would send it; both stores are changed by the merge."""
    full = full_state_bytes(a) + full_state_bytes(b)
    queue: deque[tuple[StateStore, MerklePart, int]] = deque([(b, start(a.tree), 1)])
    messages = total = hops = 0
    while queue:
        receiver, part, hop = queue.popleft()
        messages += 1
        total += frame_bytes(part)
        hops = max(hops, hop)
        if hop > max_hops:
            break
        sender = a if receiver is b else b
        replies = answer(
            receiver, part, receiver.merge_item, chunk_bytes=chunk_bytes, size_of=update_size
        )
        queue.extend((sender, reply, hop + 1) for reply in replies)
    converged = a.tree.root == b.tree.root and len(a.tree) == len(b.tree)
    return SyncCost(messages, total, hops, full, converged)
