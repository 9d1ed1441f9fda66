"""The Merkle tree and the Merkle anti-entropy exchange, in memory."""

from __future__ import annotations

import json

import pytest
from gossipcert.reference_node.core.codec import DecodeError, decode_message, encode_message
from gossipcert.reference_node.core.hlc import Timestamp
from gossipcert.reference_node.core.merkle import MerkleTree, answer, start
from gossipcert.reference_node.core.messages import (
    Merkle,
    MerkleDigest,
    MerkleItems,
    MerkleLeaves,
    MerklePart,
    Sibling,
)
from gossipcert.reference_node.core.state import StateStore, reconcile
from hypothesis import given, settings
from hypothesis import strategies as st

item_ops = st.lists(
    st.tuples(st.integers(0, 40), st.one_of(st.none(), st.integers(1, 2**64 - 1))), max_size=80
)


@settings(max_examples=100, deadline=None)
@given(ops=item_ops, depth=st.integers(1, 3))
def test_incremental_tree_equals_a_fresh_build(
    ops: list[tuple[int, int | None]], depth: int
) -> None:
    tree = MerkleTree(depth)
    final: dict[str, int] = {}
    for n, item_hash in ops:
        tree.set(f"item-{n}", item_hash)
        if item_hash is None:
            final.pop(f"item-{n}", None)
        else:
            final[f"item-{n}"] = item_hash
    fresh = MerkleTree(depth)
    for item_id, item_hash in final.items():
        fresh.set(item_id, item_hash)
    assert tree.root == fresh.root and len(tree) == len(fresh) == len(final)
    for level in range(1, depth + 1):
        parents = range(16 ** (level - 1))
        assert tree.children(level, parents) == fresh.children(level, parents)
    assert tree.leaf_items(range(16**depth)) == final
    if not final:
        assert tree.root == 0 and tree.children(1, [0]) == []  # stays sparse


def stores(keys: int, differences: int, *, depth: int = 4) -> tuple[StateStore, StateStore]:
    a, b = StateStore(depth=depth), StateStore(depth=depth)
    for i in range(keys):
        sibling = Sibling("w", Timestamp(1_000 + i, 0), {"n": i})
        a.kv.write(f"key-{i}", sibling)
        b.kv.write(f"key-{i}", sibling)
    for j in range(differences):
        # Spread the differences: some changed on a, some only on b, some deleted on a.
        key = f"key-{(j * 7919) % keys}"
        if j % 3 == 0:
            a.kv.write(key, Sibling("x", Timestamp(10**6 + j, 0), "changed"))
        elif j % 3 == 1:
            b.kv.write(f"only-b-{j}", Sibling("y", Timestamp(10**6 + j, 0), "new"))
        else:
            a.kv.write(key, Sibling("x", Timestamp(10**6 + j, 0), None, deleted=True))
    return a, b


def test_reconcile_converges_and_costs_grow_with_differences_not_keys() -> None:
    small_a, small_b = stores(400, 4)
    big_a, big_b = stores(4_000, 4)
    small = reconcile(small_a, small_b)
    big = reconcile(big_a, big_b)
    assert small.converged and big.converged
    assert small_a.kv.digest() == small_b.kv.digest()
    assert big_a.kv.digest() == big_b.kv.digest()
    # Ten times the keys, same differences: far less than ten times the bytes.
    assert big.bytes < 2 * small.bytes
    assert big.ratio < 0.02  # d = 4 among 4,000 keys: under 2% of a full-state transfer
    # Nothing left to do: a second exchange is one hop with the root.
    again = reconcile(big_a, big_b)
    assert again.messages == 1 and again.converged


def test_reconcile_of_an_empty_store_transfers_everything() -> None:
    full, _ = stores(1_000, 0)
    empty = StateStore()
    cost = reconcile(empty, full, chunk_bytes=8 * 1024)
    assert cost.converged and empty.kv.digest() == full.kv.digest()
    assert cost.messages > 3  # chunked, not one giant frame


def test_a_lost_hop_ends_the_exchange_and_the_next_one_repairs() -> None:
    a, b = stores(500, 4)
    # Run hops by hand and drop the leaves' answer.
    part: MerklePart = start(a.tree)
    sender, receiver = a, b
    while not isinstance(part, MerkleLeaves):
        replies = answer(receiver, part, receiver.merge_item, chunk_bytes=10**6, size_of=len_of)
        digests = [r for r in replies if not isinstance(r, MerkleItems)]
        for r in replies:
            if isinstance(r, MerkleItems):
                answer(sender, r, sender.merge_item, chunk_bytes=10**6, size_of=len_of)
        part = digests[0]
        sender, receiver = receiver, sender
    assert a.tree.root != b.tree.root  # the exchange stopped half way
    assert reconcile(a, b).converged


def len_of(state: object) -> int:
    return 100


@pytest.mark.parametrize(
    "part",
    [
        MerkleDigest(0, (), ((0, 2**64 - 1),)),
        MerkleDigest(2, (3, 4), ((48, 7), (65, 9))),
        MerkleLeaves((1, 2), (("kfoo", 5),)),
        MerkleItems((), ("kfoo", "cbar")),
    ],
)
def test_merkle_parts_round_trip(part: MerklePart) -> None:
    message = Merkle(sender="a", sender_addr="a:1", hlc=Timestamp(1, 0), part=part)
    assert decode_message(json.loads(json.dumps(encode_message(message)))) == message


def test_merkle_items_round_trip_with_states() -> None:
    a, _ = stores(3, 0)
    states = tuple(s for s in a.kv.entries())
    message = Merkle(sender="a", sender_addr="a:1", hlc=Timestamp(1, 0), part=MerkleItems(states))
    assert decode_message(json.loads(json.dumps(encode_message(message)))) == message


HEADER = {"t": "merkle", "from": "a", "addr": "a:1", "hlc": [1, 0]}


@pytest.mark.parametrize(
    "p",
    [
        None,
        {},
        {"d": [0, [], [[0, -1]]]},
        {"d": [0, [], [[0, 2**64]]]},
        {"d": [99, [], []]},
        {"l": [[1], [[3, 4]]]},
        {"i": [[{"k": "ks", "key": "k", "s": [["w", 1, 0, 1]], "vv": []}], []]},
        {"i": [[{"k": "c", "name": "n", "t": "g-counter", "s": [["a", -1]]}], []]},
        {"i": [[], [1]]},
        {"x": [1, 2]},
    ],
)
def test_malformed_merkle_parts_are_rejected(p: object) -> None:
    with pytest.raises(DecodeError):
        decode_message({**HEADER, "p": p})
