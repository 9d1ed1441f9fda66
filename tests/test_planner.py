"""The planner: partition shapes cut what they claim, a seed gives one sequence of
operations, and every compiled operation round-trips through its JSON form."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
from gossipcert.harness.judging.bounds import derived_parameters
from gossipcert.harness.workloads import operations as o
from gossipcert.harness.workloads.faults import Kill, Partition, Pause
from gossipcert.harness.workloads.kv import Put
from gossipcert.harness.workloads.planner import (
    SHAPES,
    PlanError,
    default_partition_ms,
    partition_shape,
    plan,
    seconds,
)
from gossipcert.harness.workloads.scenario import load_scenario, shipped_scenarios

NODES = ["n1", "n2", "n3", "n4", "n5"]


@pytest.fixture
def params(reference_timing: dict[str, Any]) -> dict[str, float]:
    """What the bounds derive from, for the reference timing and NODES."""
    return derived_parameters(reference_timing, len(NODES))


def reachable(links: list[tuple[str, str]], nodes: list[str]) -> dict[str, set[str]]:
    """Who each node can still send to."""
    cut = set(links)
    return {a: {b for b in nodes if b != a and (a, b) not in cut} for a in nodes}


def test_halves_cut_every_link_between_the_halves_both_ways() -> None:
    shape = partition_shape("halves", NODES, random.Random(1))
    assert shape["groups"] == [["n1", "n2"], ["n3", "n4", "n5"]]
    assert len(shape["links"]) == 2 * 2 * 3
    assert ("n1", "n3") in shape["links"] and ("n3", "n1") in shape["links"]
    assert ("n1", "n2") not in shape["links"]


def test_isolate_one_and_random_halves() -> None:
    iso = partition_shape("isolate-one", NODES, random.Random(2), target="n4")
    assert iso["groups"] == [["n4"], ["n1", "n2", "n3", "n5"]]
    assert reachable(iso["links"], NODES)["n4"] == set()
    halves = partition_shape("random-halves", NODES, random.Random(2))
    assert sorted(sum(halves["groups"], [])) == NODES
    assert {len(g) for g in halves["groups"]} == {2, 3}


def test_bridge_node_keeps_both_sides() -> None:
    shape = partition_shape("bridge", NODES, random.Random(3))
    bridge = shape["bridge"]
    a, b = shape["groups"]
    assert bridge not in a + b and sorted([*a, *b, bridge]) == NODES
    can = reachable(shape["links"], NODES)
    assert can[bridge] == set(NODES) - {bridge}
    for x in a:
        assert can[x] == (set(a) - {x}) | {bridge}


@pytest.mark.parametrize("n", [4, 5, 6, 7])
def test_majorities_ring_every_node_sees_a_different_majority(n: int) -> None:
    nodes = [f"n{i}" for i in range(1, n + 1)]
    shape = partition_shape("majorities-ring", nodes, random.Random(n))
    can = reachable(shape["links"], nodes)
    views = [frozenset(can[x] | {x}) for x in nodes]
    for view in views:
        assert len(view) > n // 2              # a majority, counting itself
    assert len(set(views)) == n                # nobody shares a majority with another
    for a, b in itertools.permutations(nodes, 2):   # cuts are symmetric
        assert ((a, b) in shape["links"]) == ((b, a) in shape["links"])


def test_one_way_cuts_a_single_direction() -> None:
    shape = partition_shape("one-way", NODES, random.Random(4))
    senders, receivers = shape["from"], shape["to"]
    assert set(shape["links"]) == {(a, b) for a in senders for b in receivers}
    assert not any((b, a) in shape["links"] for a in senders for b in receivers)


def test_unknown_shape_and_too_few_nodes_are_clear_errors() -> None:
    with pytest.raises(PlanError, match="unknown partition shape"):
        partition_shape("triangle", NODES, random.Random(0))
    with pytest.raises(PlanError, match="at least 2"):
        partition_shape("halves", ["n1"], random.Random(0))
    assert set(SHAPES) == {"halves", "random-halves", "isolate-one", "majorities-ring",
                           "bridge", "one-way"}


def test_durations_in_seconds_or_timing_expressions(params: dict[str, float]) -> None:
    assert seconds(3, params) == 3.0
    assert seconds({"ms": "2 * probe_interval_ms"}, params) == 0.6
    assert default_partition_ms(params) == pytest.approx(
        params["suspicion_min_ms"] + 3 * 300 + 2000)
    with pytest.raises(PlanError):
        seconds("three", params)


@pytest.mark.parametrize("name", sorted(shipped_scenarios()))
def test_same_seed_same_schedule_other_seed_other_schedule(
    name: str, params: dict[str, float],
) -> None:
    steps = load_scenario(name).steps
    first = plan(steps, NODES, 42, params)
    again = plan(steps, NODES, 42, params)
    assert first == again
    others = [plan(steps, NODES, seed, params) for seed in range(1, 6)]
    assert any(other != first for other in others)


def test_plans_never_target_a_node_that_is_down(params: dict[str, float]) -> None:
    steps: list[dict[str, Any]] = [
        {"kind": "kill"}, {"kind": "kill"}, {"kind": "partition", "shape": "halves"},
        {"kind": "pause"}, {"kind": "writes", "puts": 30},
    ]
    for seed in range(20):
        ops = plan(steps, NODES, seed, params)
        dead = {op.node for op in ops if isinstance(op, Kill)}
        assert len(dead) == 2 and "n1" not in dead      # the first node is spared
        (partition,) = [op for op in ops if isinstance(op, Partition)]
        assert not dead & {n for group in partition.groups for n in group}
        (pause,) = [op for op in ops if isinstance(op, Pause)]
        assert pause.node not in dead
        puts = [op for op in ops if isinstance(op, Put)]
        assert len(puts) >= 30 and not dead & {op.node for op in puts}


@pytest.mark.parametrize("name", sorted(shipped_scenarios()))
def test_compiled_operations_round_trip_through_json_and_the_schema(
    name: str, params: dict[str, float],
) -> None:
    import json

    import jsonschema
    from gossipcert.specs import spec_path

    schema = json.loads(spec_path("operations.schema.json").read_text())
    assert schema == o.schema(), "specs/operations.schema.json is stale: regenerate it with " \
        "python -m gossipcert.harness.workloads.operations > specs/operations.schema.json"
    validator = jsonschema.Draft202012Validator(schema)
    for op in plan(load_scenario(name).steps, NODES, 7, params):
        data = json.loads(json.dumps(op.to_json()))
        validator.validate(data)
        assert o.from_json(data) == op


def test_malformed_operations_are_named() -> None:
    with pytest.raises(o.OperationError, match="unknown op 'teleport'"):
        o.from_json({"op": "teleport"})
    with pytest.raises(o.OperationError, match=r"\(put\): missing field 'key'"):
        o.from_json({"op": "put", "node": "n1", "value": 1})
    with pytest.raises(o.OperationError, match=r"kill\)\.node: expected str"):
        o.from_json({"op": "kill", "node": 3})
    with pytest.raises(o.OperationError, match="unknown field"):
        o.from_json({"op": "heal", "everything": True})


def test_a_target_that_is_down_is_refused(params: dict[str, float]) -> None:
    with pytest.raises(PlanError, match="not up"):
        plan([{"kind": "kill", "target": "n2"}, {"kind": "pause", "target": "n2"}],
             NODES, 1, params)


def test_every_fault_comes_with_its_heal() -> None:
    """Each fault the plan may inject is packaged with the operation that undoes it."""
    from gossipcert.harness.workloads.faults import FAULTS, Cut, Heal, Latency, Loss, Resume, Start

    assert set(FAULTS) == {"kill", "restart", "pause", "partition", "cut", "latency", "loss"}
    assert Kill("n2").heal() == Start("n2")
    assert Pause("n2").heal() == Resume("n2")
    assert FAULTS["restart"]("n2").heal() is None  # a restart undoes itself
    link = (("n1", "n2"),)
    for fault in (Partition((("n1",), ("n2",))), Cut(link), Latency(link, 50), Loss(link, 0.1)):
        assert fault.heal() == Heal()
