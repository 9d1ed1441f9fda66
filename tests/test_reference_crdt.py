"""Merge laws and convergence of the reference node's CRDTs and key states, by Hypothesis.

States are drawn from histories (operations at three replicas interleaved with merges),
so they are states a real cluster can reach; on them every join must be commutative,
associative and idempotent, and any delivery order or duplication of the states must
end at one value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from gossipcert.reference_node.core.crdt import (
    CrdtError,
    GCounter,
    LWWRegister,
    ORSet,
    PNCounter,
    crdt_from_json,
    merge_any,
    new_crdt,
)
from gossipcert.reference_node.core.hlc import Timestamp
from gossipcert.reference_node.core.kv import join, visible_values, write
from gossipcert.reference_node.core.messages import KvState, Sibling
from gossipcert.reference_node.core.vclock import EMPTY, decode_context, encode_context
from hypothesis import given, settings
from hypothesis import strategies as st

REPLICAS = ("a", "b", "c")
OPS: dict[str, list[str]] = {
    "g-counter": ["increment"],
    "pn-counter": ["increment", "decrement"],
    "or-set": ["add", "remove"],
    "lww-register": ["set"],
}

step = st.tuples(
    st.sampled_from(["op", "merge"]),
    st.integers(0, 2),
    st.integers(0, 2),
    st.integers(0, 3),
    st.integers(0, 1),
)


def crdt_history(type_name: str, steps: list[tuple[str, int, int, int, int]]) -> list[Any]:
    """Run a history; return every state any replica held."""
    replicas = [new_crdt(type_name) for _ in REPLICAS]
    clocks = [0, 0, 0]
    seen = list(replicas)
    for action, i, j, value, op_index in steps:
        if action == "op":
            ops = OPS[type_name]
            clocks[i] += 1
            ts = Timestamp(clocks[i] * 10 + i, 0)
            replicas[i] = replicas[i].apply(ops[op_index % len(ops)], value, REPLICAS[i], ts)
        else:
            replicas[i] = merge_any(replicas[i], replicas[j])
        seen.append(replicas[i])
    return seen


def check_laws(
    states: list[Any], join_fn: Callable[[Any, Any], Any], value: Callable[[Any], Any]
) -> None:
    for x in states[-6:]:
        assert join_fn(x, x) == x
        for y in states[-6:]:
            assert value(join_fn(x, y)) == value(join_fn(y, x))
            assert join_fn(x, y) == join_fn(y, x)
            for z in states[-4:]:
                assert join_fn(join_fn(x, y), z) == join_fn(x, join_fn(y, z))


def check_convergence(
    states: list[Any],
    order: list[int],
    join_fn: Callable[[Any, Any], Any],
    value: Callable[[Any], Any],
) -> None:
    """Delivering the states in any order, with duplicates, ends at one value."""
    forward = states[0]
    for s in states[1:]:
        forward = join_fn(forward, s)
    shuffled = states[order[0] % len(states)]
    for k in order:
        shuffled = join_fn(shuffled, states[k % len(states)])
    for s in states:  # every state at least once
        shuffled = join_fn(shuffled, s)
    assert value(shuffled) == value(forward)


@pytest.mark.parametrize("type_name", list(OPS))
@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(step, min_size=1, max_size=25),
    order=st.lists(st.integers(0, 100), min_size=1, max_size=30),
)
def test_crdt_merge_laws_and_convergence(
    type_name: str, steps: list[Any], order: list[int]
) -> None:
    states = crdt_history(type_name, steps)

    def value(c: Any) -> Any:
        return c.value()

    check_laws(states, merge_any, value)
    check_convergence(states, order, merge_any, value)
    for s in states:  # the wire form round-trips
        assert crdt_from_json(s.type_name, s.to_json()) == s


def kv_history(policy: str, steps: list[tuple[str, int, int, int, int]]) -> list[KvState]:
    """Writes (with the replica's own context, none, or a delete) and merges of one key."""
    replicas: list[KvState | None] = [None, None, None]
    clocks = [0, 0, 0]
    seen: list[KvState] = []
    for action, i, j, value, mode in steps:
        if action == "op":
            clocks[i] += 1
            current = replicas[i]
            # An HLC stays above everything its replica has seen.
            high = max([s.timestamp.wall_ms for s in current.siblings], default=0) if current else 0
            clocks[i] = max(clocks[i], high + 1)
            sibling = Sibling(REPLICAS[i], Timestamp(clocks[i], i), value, deleted=value == 0)
            context = None if policy == "lww" else (current.context if current and mode else EMPTY)
            replicas[i] = write(current, "k", sibling, context, policy)  # type: ignore[arg-type]
        else:
            a, b = replicas[i], replicas[j]
            if a is None or b is None:
                replicas[i] = a or b
            else:
                replicas[i] = join(a, b, policy)  # type: ignore[arg-type]
        if replicas[i] is not None:
            seen.append(replicas[i])  # type: ignore[arg-type]
    return seen


@pytest.mark.parametrize("policy", ["mv", "lww"])
@settings(max_examples=80, deadline=None)
@given(
    steps=st.lists(step, min_size=1, max_size=25),
    order=st.lists(st.integers(0, 100), min_size=1, max_size=30),
)
def test_key_state_merge_laws_and_convergence(
    policy: str, steps: list[Any], order: list[int]
) -> None:
    states = kv_history(policy, steps)
    if not states:
        return

    def join_fn(x: KvState, y: KvState) -> KvState:
        return join(x, y, policy)  # type: ignore[arg-type]

    check_laws(states, join_fn, visible_values)
    check_convergence(states, order, join_fn, visible_values)
    if policy == "lww":
        for s in states:
            assert len(s.siblings) == 1


def test_mv_register_keeps_concurrent_writes_and_a_context_supersedes_them() -> None:
    x = write(None, "k", Sibling("a", Timestamp(1, 0), "x"), EMPTY, "mv")
    y = write(None, "k", Sibling("b", Timestamp(1, 0), "y"), EMPTY, "mv")
    both = join(x, y, "mv")
    assert visible_values(both) == ["x", "y"]
    context = decode_context(encode_context(both.context))
    z = write(both, "k", Sibling("c", Timestamp(2, 0), "z"), context, "mv")
    assert visible_values(z) == ["z"]
    # A replica that only saw `x` and wrote over it leaves `y` standing.
    w = write(x, "k", Sibling("a", Timestamp(3, 0), "w"), x.context, "mv")
    assert visible_values(join(w, y, "mv")) == ["w", "y"]
    assert visible_values(join(join(w, y, "mv"), z, "mv")) == ["w", "z"]
    # Under lww the same histories keep one value: the greatest (timestamp, writer).
    assert visible_values(join(x, y, "lww")) == ["y"]


def test_or_set_add_wins_over_a_concurrent_remove() -> None:
    base = ORSet().apply("add", "e", "a", Timestamp(1, 0))
    removed = base.apply("remove", "e", "b", Timestamp(2, 0))
    readded = base.apply("add", "e", "c", Timestamp(2, 0))
    assert removed.value() == []
    assert removed.merge(readded).value() == ["e"]
    assert removed.merge(base).value() == []  # the remove saw base's tag


def test_counters_and_register_values() -> None:
    g = (
        GCounter()
        .apply("increment", None, "a", Timestamp(1, 0))
        .apply("increment", 4, "b", Timestamp(1, 0))
    )
    assert g.value() == 5
    pn = (
        PNCounter()
        .apply("increment", 3, "a", Timestamp(1, 0))
        .apply("decrement", 5, "b", Timestamp(1, 0))
    )
    assert pn.value() == -2
    r1 = LWWRegister().apply("set", "old", "a", Timestamp(1, 0))
    r2 = LWWRegister().apply("set", "tie", "b", Timestamp(1, 0))
    assert r1.merge(r2).value() == "tie" == r2.merge(r1).value()  # greater writer id wins
    assert ORSet().apply("add", 10, "a", Timestamp(1, 0)).apply(
        "add", 9, "a", Timestamp(2, 0)
    ).value() == [9, 10]


@pytest.mark.parametrize(
    ("type_name", "op", "value"),
    [
        ("g-counter", "decrement", 1),
        ("g-counter", "increment", -1),
        ("pn-counter", "increment", "many"),
        ("or-set", "set", 1),
        ("lww-register", "add", 1),
    ],
)
def test_bad_ops_are_refused(type_name: str, op: str, value: Any) -> None:
    with pytest.raises(CrdtError):
        new_crdt(type_name).apply(op, value, "a", Timestamp(1, 0))
    with pytest.raises(CrdtError):
        new_crdt("mystery")


def test_concurrently_created_types_settle_on_one() -> None:
    g = GCounter().apply("increment", 1, "a", Timestamp(1, 0))
    s = ORSet().apply("add", 1, "b", Timestamp(1, 0))
    assert merge_any(g, s) == merge_any(s, g) == s  # "or-set" > "g-counter"
