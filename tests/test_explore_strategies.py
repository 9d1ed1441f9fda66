"""The sequences explore draws: valid for any cluster they are drawn for, in JSON and
back, never more than a minority down, healed at the end; and the rules that keep the
checkers sound on a correct node hold choice by choice."""

from __future__ import annotations

import json

import pytest
from gossipcert.harness.manifest import load_manifest
from gossipcert.harness.workloads import operations as o
from gossipcert.harness.workloads.broadcast import Broadcast
from gossipcert.harness.workloads.capabilities import (
    operation_sequences,
    sequence_builder,
    simulation_sequences,
)
from gossipcert.harness.workloads.crdt import Crdt
from gossipcert.harness.workloads.faults import (
    Cut,
    Kill,
    Latency,
    Loss,
    Partition,
    Pause,
    Resume,
    Start,
)
from gossipcert.harness.workloads.kv import Put
from gossipcert.harness.workloads.operations import load_ops
from gossipcert.harness.workloads.strategies import (
    DEAD,
    Space,
    fault_kinds,
    sequence_problems,
    wait_lengths_ms,
    with_namespace,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REFERENCE = load_manifest("reference")
TIMING = dict(REFERENCE.timing)
CAPS = frozenset(REFERENCE.capabilities)
NODES5 = ("n1", "n2", "n3", "n4", "n5")

SPACES = [
    Space(NODES5, CAPS, TIMING),
    Space(("n1", "n2", "n3"), CAPS, TIMING, policy="mv", max_steps=20),
    Space(NODES5, frozenset({"membership", "kv"}), TIMING, network=False, latency=False,
          loss=False),
    Space(("n1", "n2", "n3", "n4"), frozenset({"membership", "broadcast", "crdt"}), TIMING,
          latency=False),
]

fast = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


@fast
@given(data=st.data(), which=st.integers(0, len(SPACES) - 1))
def test_every_sequence_is_runnable_and_ends_healed(data: st.DataObject, which: int) -> None:
    space = SPACES[which]
    ops = data.draw(operation_sequences(space))
    assert sequence_problems(ops, space.nodes) == []
    assert isinstance(ops[0], o.AwaitMembers) and not ops[0].nodes
    last = max(i for i, op in enumerate(ops) if isinstance(op, o.AwaitConvergence))
    assert all(op.kind in ("wait", "await-crdt", "await-delivery") for op in ops[last + 1:])


@fast
@given(ops=operation_sequences(SPACES[0]))
def test_sequences_round_trip_through_json(ops: list[o.Op]) -> None:
    text = json.dumps([op.to_json() for op in ops])
    assert load_ops(json.loads(text)) == ops


@fast
@given(ops=operation_sequences(SPACES[0]))
def test_never_more_than_a_minority_down(ops: list[o.Op]) -> None:
    down: set[str] = set()
    for op in ops:
        assert not (isinstance(op, Kill) and op.node == "n1")  # every node's launch seed
        if isinstance(op, Kill | Pause):
            down.add(op.node)
        elif isinstance(op, Start | Resume):
            down.discard(op.node)
        assert len(down) <= 2  # of 5: never every node, never a majority
    assert down == set()


@fast
@given(ops=operation_sequences(SPACES[2]))
def test_capabilities_decide_the_workload(ops: list[o.Op]) -> None:
    """kv only, no network plane: no CRDT, no broadcast, no cut, latency or loss."""
    kinds = {op.kind for op in ops}
    assert not kinds & {"crdt", "broadcast", "partition", "cut", "latency", "loss"}


@fast
@given(ops=operation_sequences(SPACES[0]))
def test_values_are_unique_and_latency_stays_below_the_probe_timeout(ops: list[o.Op]) -> None:
    puts = [p for op in ops for p in (op.ops if isinstance(op, o.Concurrent) else (op,))
            if isinstance(p, Put)]
    assert len({p.value for p in puts}) == len(puts)
    for op in ops:
        if isinstance(op, Latency):
            assert op.latency_ms + op.jitter_ms < TIMING["probe_timeout_ms"]
        if isinstance(op, Loss):
            assert op.probability <= 0.1


def build(*choices: tuple[object, ...], space: Space = SPACES[0]) -> list[o.Op]:
    return sequence_builder(space).build(list(choices))


def fault(kind: str, node: int = 0, mask: int = 1, which: int = 0, level: int = 0,
          bridge: bool = False) -> tuple[object, ...]:
    return ("fault", kind, node, mask, which, level, bridge)


def test_the_end_heals_resumes_and_starts_what_is_down() -> None:
    ops = build(fault("kill", 0), fault("partition", mask=0b00011), ("put", 0, 0))
    kinds = [op.kind for op in ops]
    assert kinds[-3:] == ["heal", "start", "await-convergence"]
    assert ops[-2] == Start("n2")
    ops = build(fault("pause", 2), ("wait", 2))
    assert [op.kind for op in ops][-2:] == ["resume", "await-convergence"]


def test_at_most_a_minority_is_killed() -> None:
    ops = build(fault("kill", 0), fault("kill", 0), fault("kill", 0))
    assert [op.node for op in ops if isinstance(op, Kill)] == ["n2", "n3"]  # n1 spared
    three = Space(("n1", "n2", "n3"), CAPS, TIMING)
    ops = build(fault("kill", 0), fault("kill", 0), fault("restart", 0), space=three)
    assert [op.kind for op in ops].count("kill") == 1
    assert "restart" not in [op.kind for op in ops]


def test_nothing_but_waits_awaits_broadcasts_and_starts_after_a_restart() -> None:
    ops = build(fault("kill", 1), fault("restart", 0), ("put", 0, 0), fault("kill", 0),
                fault("partition"), fault("latency"), ("broadcast", 0), fault("start", 0))
    kinds = [op.kind for op in ops]
    assert kinds[1:5] == ["kill", "restart", "broadcast", "start"]
    assert "put" not in kinds and "partition" not in kinds and "latency" not in kinds


def test_a_pause_awaits_writes_and_broadcasts_first_and_ends_the_faults() -> None:
    ops = build(("put", 0, 0), ("broadcast", 1), fault("pause", 2), ("put", 0, 1),
                fault("kill", 0), fault("partition"), fault("resume"), fault("pause", 1),
                ("put", 0, 1))
    kinds = [op.kind for op in ops]
    assert kinds[3:6] == ["await-delivery", "await-digests", "pause"]
    assert kinds.count("pause") == 1 and "kill" not in kinds and "partition" not in kinds
    pause_at, resume_at = kinds.index("pause"), kinds.index("resume")
    assert "put" not in kinds[pause_at:resume_at]  # no write while paused
    assert "put" in kinds[resume_at:]  # writes after the resume


def test_latency_and_loss_never_overlap_a_cut_and_wait_for_views_to_settle() -> None:
    ops = build(fault("partition"), fault("latency"), fault("heal"), fault("latency"))
    assert "latency" not in [op.kind for op in ops]  # after a heal: none until a new cut
    ops = build(fault("latency"), fault("partition"), fault("loss", level=1))
    kinds = [op.kind for op in ops]
    assert "partition" not in kinds and kinds.count("heal") == 1
    loss = next(op for op in ops if isinstance(op, Loss))
    assert loss.probability == 0.1
    ops = build(fault("kill"), fault("start"), fault("latency"))
    assert "latency" not in [op.kind for op in ops]  # a rejoined node's window runs on


def test_after_a_heal_no_process_fault_until_another_cut() -> None:
    ops = build(fault("partition", mask=0b00001), fault("heal"), fault("kill", 1),
                fault("pause", 1), fault("cut", mask=0b00110), fault("kill", 1))
    kinds = [op.kind for op in ops]
    assert kinds[1:5] == ["partition", "heal", "cut", "kill"]
    cut = next(op for op in ops if isinstance(op, Cut))
    assert set(cut.links) == {(a, b) for a in ("n2", "n3") for b in ("n1", "n4", "n5")}


def test_partition_shapes() -> None:
    ops = build(fault("partition", mask=0b00101, bridge=True))
    partition = next(op for op in ops if isinstance(op, Partition))
    assert partition.groups == (("n1", "n3"), ("n2", "n4"))  # n5 bridges both sides
    assert partition.shape == "bridge"


def test_or_set_removes_go_where_the_element_was_added() -> None:
    ops = build(("crdt", 2, 3, 0), ("crdt", 2, 0, 2))
    adds = [op for op in ops if isinstance(op, Crdt)]
    assert [(op.node, op.operation, op.value) for op in adds] == [
        ("n4", "add", "e0"), ("n4", "remove", "e0")]


def test_awaits_that_cannot_end_under_a_cut_are_left_out() -> None:
    ops = build(fault("kill", 0), fault("partition"), ("await", 0), ("await", 3),
                fault("heal"), ("await", 3))
    awaits = [op for op in ops if isinstance(op, o.AwaitMembers) and op.nodes]
    assert awaits == [o.AwaitMembers(("n2",), DEAD, requirement="FD-DETECT")]


def test_namespaces_rename_keys_crdts_and_broadcasts_only() -> None:
    ops = build(("put", 1, 1), ("race", 0, 3), ("crdt", 0, 0, 0), ("broadcast", 2),
                fault("kill", 0))
    renamed = with_namespace(ops, "x7-")
    keys = {p.key for op in renamed
            for p in (op.ops if isinstance(op, o.Concurrent) else (op,))
            if isinstance(p, Put)}
    assert keys == {"x7-k1", "x7-k0"}
    assert {op.name for op in renamed if isinstance(op, Crdt)} == {"x7-hits"}
    assert {op.id for op in renamed if isinstance(op, Broadcast | o.AwaitDelivery)} == {
        "x7-b1"}
    assert [op for op in renamed if isinstance(op, Kill)] == [Kill("n2")]


def test_fault_kinds_follow_the_planes() -> None:
    assert fault_kinds(SPACES[2]) == ("kill", "start", "restart", "pause", "resume")
    assert "latency" not in fault_kinds(SPACES[3]) and "cut" in fault_kinds(SPACES[3])
    assert fault_kinds(Space(NODES5, CAPS, TIMING, faults=False)) == ()


def test_wait_lengths_follow_the_timing() -> None:
    short, medium, long = wait_lengths_ms(TIMING, 5)
    assert short < medium < long
    slow = {**TIMING, "probe_interval_ms": 1000, "gossip_interval_ms": 200}
    assert wait_lengths_ms(slow, 5) > (short, medium, long)


def test_a_space_needs_three_nodes_and_a_known_policy() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        Space(("n1", "n2"), CAPS, TIMING)
    with pytest.raises(ValueError, match="policy"):
        Space(NODES5, CAPS, TIMING, policy="crdt")


@fast
@given(ops=simulation_sequences())
def test_simulation_sequences_use_every_plane(ops: list[o.Op]) -> None:
    assert sequence_problems(ops, ("n1", "n2", "n3")) == []


def test_a_node_is_not_crashed_while_its_writes_may_be_its_alone() -> None:
    ops = build(("crdt", 3, 1, 0), fault("kill", 0))
    kinds = [op.kind for op in ops]
    assert kinds[1:4] == ["crdt", "wait", "kill"]  # gossip rounds before the crash
    # Written across a cut: another node is crashed instead, until an await after a heal.
    ops = build(fault("partition", mask=0b00001), ("put", 0, 0), fault("kill", 0))
    assert [op.node for op in ops if isinstance(op, Kill)] == ["n2"]
    only_writer = Space(("n1", "n2", "n3"), CAPS, TIMING)
    ops = build(fault("partition", mask=0b001), ("race", 0, 3), fault("restart", 0),
                space=only_writer)
    assert "restart" not in [op.kind for op in ops]


def test_broadcasts_are_delivered_before_a_cut_and_not_sent_across_one() -> None:
    ops = build(("broadcast", 0), fault("partition", mask=0b00011), ("broadcast", 1))
    kinds = [op.kind for op in ops]
    assert kinds[1:4] == ["broadcast", "await-delivery", "partition"]
    assert kinds.count("broadcast") == 1
