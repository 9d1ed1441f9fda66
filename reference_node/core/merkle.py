"""Merkle anti-entropy: a hash tree over item-id hash ranges, and the exchange over it.

The tree has a fixed fanout of 16 and a fixed `depth`: an item sits in the leaf named by
the top `4 * depth` bits of a hash of its id, and every node's hash is the sum (mod 2^64)
of the hashes of the items below it. A sum makes updates incremental (one write touches
`depth + 1` nodes, never a rebuild) and lets the tree stay sparse: only non-empty nodes
are stored, so an empty store costs nothing.

The exchange is stateless, one hop per message (`Merkle` messages carrying a part):

1. the initiator sends its root (`MerkleDigest` level 0);
2. each side compares the other's hashes with its own at that level and answers with its
   own hashes one level down, only under the nodes that differ (`MerkleDigest`); a
   node the other side lacks entirely is answered with every item under it
   (`MerkleItems`), and at the leaves the side lists its (id, hash) pairs
   (`MerkleLeaves`);
3. the leaves' receiver sends the states that differ and asks for the ones it lacks
   (`MerkleItems` with `want`), which the other side answers.

So d differences among K items cost about `d * 16 * depth` hashes instead of K states,
and a lost hop just ends the exchange until the next anti-entropy round.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from gossipcert.reference_node.core.messages import (
    CrdtUpdate,
    KvState,
    MerkleDigest,
    MerkleItems,
    MerkleLeaves,
    MerklePart,
)

FANOUT_BITS = 4
FANOUT = 1 << FANOUT_BITS
MASK = (1 << 64) - 1
DEFAULT_DEPTH = 4
"""16^4 = 65,536 leaves: about 1.5 items a leaf at K = 100,000."""

ItemState = KvState | CrdtUpdate


def item_position(item_id: str) -> int:
    """Where an item sits: 64 bits of a hash of its id."""
    return int.from_bytes(hashlib.blake2b(item_id.encode(), digest_size=8).digest(), "big")


class MerkleTree:
    """Sparse sum-hash tree over item ids (see the module docstring)."""

    def __init__(self, depth: int = DEFAULT_DEPTH) -> None:
        if not 0 <= depth <= 15:
            raise ValueError(f"merkle depth must be within 0..15, got {depth}")
        self.depth = depth
        # levels[L][prefix] = [hash sum, item count]
        self._levels: list[dict[int, list[int]]] = [{} for _ in range(depth + 1)]
        self._leaves: dict[int, dict[str, int]] = {}
        self._items: dict[str, tuple[int, int]] = {}  # id -> (leaf, item hash)

    def __len__(self) -> int:
        return len(self._items)

    def _prefix(self, position: int, level: int) -> int:
        return position >> (64 - FANOUT_BITS * level) if level else 0

    def set(self, item_id: str, item_hash: int | None) -> None:
        """Insert, change or (with None) remove one item: O(depth)."""
        old = self._items.get(item_id)
        if item_hash is None:
            if old is None:
                return
            leaf, old_hash = old
            del self._items[item_id]
            bucket = self._leaves[leaf]
            del bucket[item_id]
            if not bucket:
                del self._leaves[leaf]
            self._adjust(leaf, -old_hash, -1)
            return
        if old is None:
            leaf = self._prefix(item_position(item_id), self.depth)
            self._adjust(leaf, item_hash, +1)
        else:
            leaf, old_hash = old
            if old_hash == item_hash:
                return
            self._adjust(leaf, item_hash - old_hash, 0)
        self._items[item_id] = (leaf, item_hash)
        self._leaves.setdefault(leaf, {})[item_id] = item_hash

    def _adjust(self, leaf: int, delta: int, count: int) -> None:
        for level in range(self.depth, -1, -1):
            prefix = leaf >> (FANOUT_BITS * (self.depth - level))
            row = self._levels[level]
            node = row.get(prefix)
            if node is None:
                node = row[prefix] = [0, 0]
            node[0] = (node[0] + delta) & MASK
            node[1] += count
            if node[1] == 0:
                del row[prefix]

    def hash(self, level: int, prefix: int) -> int:
        node = self._levels[level].get(prefix)
        return 0 if node is None else node[0]

    @property
    def root(self) -> int:
        return self.hash(0, 0)

    def children(self, level: int, parents: Iterable[int]) -> list[tuple[int, int]]:
        """Non-empty nodes at `level` under `parents` (at level - 1), as (prefix, hash)."""
        row = self._levels[level]
        out: list[tuple[int, int]] = []
        for parent in parents:
            for child in range(parent << FANOUT_BITS, (parent + 1) << FANOUT_BITS):
                node = row.get(child)
                if node is not None:
                    out.append((child, node[0]))
        return out

    def leaf_items(self, leaves: Iterable[int]) -> dict[str, int]:
        out: dict[str, int] = {}
        for leaf in leaves:
            out.update(self._leaves.get(leaf, {}))
        return out

    def items_under(self, level: int, prefixes: Iterable[int]) -> Iterator[str]:
        """Every item id in the subtrees rooted at `prefixes` of `level`."""
        shift = FANOUT_BITS * (self.depth - level)
        wanted = set(prefixes)
        if len(wanted) * (1 << shift) <= len(self._leaves):
            for prefix in wanted:
                for leaf in range(prefix << shift, (prefix + 1) << shift):
                    yield from self._leaves.get(leaf, {})
        else:
            for leaf, bucket in self._leaves.items():
                if leaf >> shift in wanted:
                    yield from bucket


class Replica(Protocol):
    """What the exchange needs of a store."""

    tree: MerkleTree

    def item_state(self, item_id: str) -> ItemState | None: ...


def start(tree: MerkleTree) -> MerkleDigest:
    """The opening hop: my root."""
    return MerkleDigest(0, (), ((0, tree.root),) if len(tree) else ())


def answer(
    replica: Replica,
    part: MerklePart,
    merge: Callable[[ItemState], object],
    *,
    chunk_bytes: int,
    size_of: Callable[[ItemState], int],
) -> list[MerklePart]:
    """The next hop(s) for a received part; an empty list ends the exchange.

    `merge` applies a received state to the replica; `size_of` gives a state's encoded
    size so `MerkleItems` replies stay under `chunk_bytes` each.
    """
    tree = replica.tree
    if isinstance(part, MerkleDigest):
        return _on_digest(replica, part, chunk_bytes, size_of)
    if isinstance(part, MerkleLeaves):
        theirs = dict(part.items)
        mine = tree.leaf_items(part.leaves)
        send = [i for i, h in mine.items() if theirs.get(i) != h]
        want = tuple(sorted(i for i, h in theirs.items() if mine.get(i) != h))
        return _items(replica, send, want, chunk_bytes, size_of)
    for state in part.states:
        merge(state)
    if not part.want:
        return []
    return _items(replica, part.want, (), chunk_bytes, size_of)


def _on_digest(
    replica: Replica,
    part: MerkleDigest,
    chunk_bytes: int,
    size_of: Callable[[ItemState], int],
) -> list[MerklePart]:
    tree = replica.tree
    level = part.level
    if level > tree.depth:
        return []  # a peer with another depth: nothing comparable
    theirs = dict(part.hashes)
    candidates = (
        [0]
        if level == 0
        else [
            child
            # Deduplicated and in range: a peer cannot make us walk more than the tree.
            for parent in sorted({p for p in part.parents if p < FANOUT ** (level - 1)})
            for child in range(parent << FANOUT_BITS, (parent + 1) << FANOUT_BITS)
        ]
    )
    push: list[int] = []
    descend: list[int] = []
    for prefix in candidates:
        mine = tree.hash(level, prefix)
        other = theirs.get(prefix, 0)
        if mine == other:
            continue
        if other == 0:
            push.append(prefix)  # they hold nothing here: send it all
        else:
            descend.append(prefix)
    replies: list[MerklePart] = []
    if push:
        items = list(tree.items_under(level, push))
        replies.extend(_items(replica, items, (), chunk_bytes, size_of))
    if descend:
        if level == tree.depth:
            pairs = tree.leaf_items(descend)
            replies.append(MerkleLeaves(tuple(descend), tuple(sorted(pairs.items()))))
        else:
            below = tree.children(level + 1, descend)
            replies.append(MerkleDigest(level + 1, tuple(descend), tuple(below)))
    return replies


def _items(
    replica: Replica,
    ids: Iterable[str],
    want: tuple[str, ...],
    chunk_bytes: int,
    size_of: Callable[[ItemState], int],
) -> list[MerklePart]:
    """States of `ids` in messages of at most about `chunk_bytes`; `want` rides on the
    first."""
    parts: list[MerklePart] = []
    batch: list[ItemState] = []
    used = 0
    for item_id in ids:
        state = replica.item_state(item_id)
        if state is None:
            continue
        size = size_of(state)
        if batch and used + size > chunk_bytes:
            parts.append(MerkleItems(tuple(batch), want if not parts else ()))
            batch, used = [], 0
        batch.append(state)
        used += size
    if batch or want:
        parts.append(MerkleItems(tuple(batch), want if not parts else ()))
    return parts
