"""Scenario files: the shipped ones validate and plan, bad ones are one clear line, and every
shipped scenario certifies the reference node on the process backend (slow): those the
catalogue names inside the reference node's full suite (the compliance run, checked by
``test_certify_e2e.check_full_suite``), the others one by one here with ``--scenario``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from gossipcert.harness.drivers.sweep import orphaned_processes
from gossipcert.harness.manifest import load_manifest
from gossipcert.harness.workloads import operations as o
from gossipcert.harness.workloads.broadcast import Broadcast
from gossipcert.harness.workloads.crdt import Crdt
from gossipcert.harness.workloads.faults import Kill, Partition
from gossipcert.harness.workloads.kv import Delete, Get, Put
from gossipcert.harness.workloads.scenario import (
    ScenarioError,
    load_scenario,
    run_manifest,
    schedule,
    shipped_scenarios,
)
from gossipcert.harness.workloads.security import Intruder

SHIPPED = sorted(shipped_scenarios())


def test_the_required_scenarios_ship() -> None:
    assert {"default", "partitions", "flapping", "latency-storm", "crash-restart",
            "paused-node", "mv", "crdt", "churn", "lossy", "security"} <= set(SHIPPED)


def _catalogue_scenarios() -> dict[str, list[str]]:
    import yaml
    from gossipcert.specs import spec_path

    data = yaml.safe_load(spec_path("requirements.yaml").read_text())
    return {r["id"]: r["scenarios"] for r in data["requirements"]}


def _outside_the_suite() -> list[str]:
    """Shipped scenarios no requirement names: the full suite never runs them."""
    named = {name for names in _catalogue_scenarios().values() for name in names}
    return [name for name in SHIPPED if name not in named]


def test_every_requirement_names_a_shipped_scenario() -> None:
    missing = {rid: names for rid, names in _catalogue_scenarios().items()
               if not set(names) <= set(SHIPPED)}
    assert missing == {}


def test_every_shipped_scenario_runs_in_a_full_certification() -> None:
    """A PASS means surviving every fault schedule shipped, Jepsen's partition shapes
    among them: no scenario is left for ``--scenario`` only. The reference node's full
    suite (``tests/test_compliance.py``) runs them all and checks each one's plan."""
    assert _outside_the_suite() == []
    named = _catalogue_scenarios()
    assert {"partitions", "flapping"} <= set(named["PARTITION-HEAL"])
    assert "partitions" in named["KV-AFTER-PARTITION"]
    assert "broadcast-partitions" in named["BCAST-DELIVERY"]
    steps = [s for name in ("partitions", "flapping", "broadcast-partitions")
             for s in load_scenario(name).steps]
    shapes = {s.get("shape") for s in steps if s["kind"] == "partition"}
    assert {"bridge", "one-way", "majorities-ring", "isolate-one", "halves"} <= shapes
    assert any(s["kind"] == "flap" for s in steps)
    assert any(s["kind"] == "partition" and s.get("plane") == "packet" for s in steps)
    assert any(s["kind"] == "partition" and s.get("broadcasts") for s in steps)


def test_scenario_overrides_the_conflict_policy_only_when_supported() -> None:
    from dataclasses import replace


    reference = load_manifest("reference")
    assert reference.conflict_policy == "lww"
    assert run_manifest(reference, load_scenario("mv")).conflict_policy == "mv"
    assert run_manifest(reference, load_scenario("default")).conflict_policy == "lww"
    only_lww = replace(reference, conflict_policies=("lww",))
    assert run_manifest(only_lww, load_scenario("mv")).conflict_policy == "lww"


def test_the_plan_draws_deletes_crdt_ops_and_mv_rounds(reference_timing: dict[str, Any]) -> None:
    nodes = [f"n{i}" for i in range(1, 6)]
    default = schedule(load_scenario("default"), nodes, 7, reference_timing)
    deletes = [op for op in default if isinstance(op, Delete)]
    races = [op for op in default if isinstance(op, o.Concurrent)]
    assert len(deletes) == 3 and len(races) == 3
    raced = {put.key for race in races for put in race.ops if isinstance(put, Put)}
    assert not {op.key for op in deletes} & raced
    assert all(len(race.ops) == 5 for race in races)  # every node writes the key
    crdt = schedule(load_scenario("crdt"), nodes, 7, reference_timing)
    types = {op.type for op in crdt if isinstance(op, Crdt)}
    assert types == {"g-counter", "pn-counter", "or-set", "lww-register"}
    mv = schedule(load_scenario("mv"), nodes, 7, reference_timing)
    gets = [op for op in mv if isinstance(op, Get)]
    assert gets
    for get in gets:
        blind = next(r for r in mv if isinstance(r, o.Concurrent)
                     and all(isinstance(p, Put) and p.key == get.key and not p.with_context
                             for p in r.ops))
        rmw = next(r for r in mv if isinstance(r, o.Concurrent)
                   and any(isinstance(p, Put) and p.key == get.key and p.with_context
                           for p in r.ops))
        blind_nodes = {p.node for p in blind.ops if isinstance(p, Put)}
        racer = next(p.node for p in rmw.ops if isinstance(p, Put) and not p.with_context)
        assert get.node not in blind_nodes and racer in blind_nodes


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenarios_validate_and_plan(name: str, reference_timing: dict[str, Any]) -> None:
    scenario = load_scenario(name)
    assert scenario.name == name
    nodes = [f"n{i}" for i in range(1, 6)]
    ops = schedule(scenario, nodes, 7, reference_timing)
    assert ops and all(isinstance(op, o.Op) for op in ops)
    json.dumps([op.to_json() for op in ops])  # the sequence is written to schedule.json


def test_default_scenario_is_the_v1_run() -> None:
    kinds = [s["kind"] for s in load_scenario("default").steps]
    assert kinds == ["join", "quiet", "writes", "broadcast", "partition"]


def test_a_broadcast_that_kills_its_origin_plans_the_origin_down(
    reference_timing: dict[str, Any],
) -> None:
    """The kill of the default run is the broadcast's origin, killed after one hop: never
    the first node, and no later step targets it."""
    nodes = [f"n{i}" for i in range(1, 6)]
    for seed in range(20):
        ops = schedule(load_scenario("default"), nodes, seed, reference_timing)
        cast = next(op for op in ops if isinstance(op, Broadcast))
        after = ops[ops.index(cast) + 1:]
        # First the first hop, then the kill, then delivery to the rest by relay.
        assert isinstance(after[0], o.AwaitDelivery) and after[0].any_of
        assert after[1] == Kill(cast.node) and cast.node != "n1"
        assert isinstance(after[3], o.AwaitDelivery) and not after[3].any_of
        cut = next(op for op in ops if isinstance(op, Partition))
        assert cast.node not in {n for group in cut.groups for n in group}
    plain = schedule(load_scenario("flapping"), nodes, 3, reference_timing)
    assert not any(isinstance(op, Kill) for op in plain)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("text", "message"), [
    ("name: x\nsteps: []\n", "steps"),
    ("name: x\nsteps:\n  - kind: explode\n", "steps/0/kind"),
    ("name: x\nsteps:\n  - kind: partition\n    shape: square\n", "steps/0/shape"),
    ("name: x\nsteps:\n  - kind: quiet\n", "duration"),
    ("name: x\nsteps:\n  - kind: kill\n    probability: 0.5\n", "probability"),
    ("name: x\nsteps: [\n", "cannot read"),
])
def test_bad_scenarios_are_refused_with_the_field_named(tmp_path: Path, text: str,
                                                        message: str) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(write(tmp_path, text))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_too_small_a_cluster_is_refused(tmp_path: Path,
                                        reference_timing: dict[str, Any]) -> None:
    big = write(tmp_path, "name: big\nmin_nodes: 5\nsteps:\n  - kind: join\n")
    with pytest.raises(ScenarioError, match="at least 5 nodes"):
        schedule(load_scenario(big), ["n1", "n2", "n3"], 1, reference_timing)


def test_every_shipped_scenario_plans_on_the_smallest_cluster(
        reference_timing: dict[str, Any]) -> None:
    """Every scenario runs in every certification, so every one plans on the 3 nodes
    certify accepts (a shape that needs more, the majorities ring, says so in a note)."""
    for name in SHIPPED:
        assert load_scenario(name).min_nodes <= 3, name
        assert schedule(load_scenario(name), ["n1", "n2", "n3"], 1, reference_timing)


def test_cli_lists_scenarios_and_refuses_a_bad_one(tmp_path: Path) -> None:
    listed = subprocess.run([sys.executable, "-m", "gossipcert.harness", "scenarios"],
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0
    for name in SHIPPED:
        assert name in listed.stdout
    bad = write(tmp_path, "name: x\nsteps:\n  - kind: partition\n    shape: square\n")
    run = subprocess.run([sys.executable, "-m", "gossipcert.harness", "certify", "--scenario",
                          str(bad), "--report-dir", str(tmp_path / "run")],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert run.stderr.strip().count("\n") == 0 and "steps/0/shape" in run.stderr
    assert orphaned_processes() == {}


def test_the_security_scenario_plans_a_wrong_key_node(reference_timing: dict[str, Any]) -> None:
    nodes = [f"n{i}" for i in range(1, 6)]
    scenario = load_scenario("security")
    assert scenario.encryption
    ops = schedule(scenario, nodes, 7, reference_timing)
    step = next(op for op in ops if isinstance(op, Intruder))
    assert step.node == "x1" and step.node not in nodes and step.seed in nodes
    # two probe intervals and three push-pull intervals of the reference timing
    assert step.ms == 3600


def test_a_wrong_key_node_may_not_take_a_members_id(
    tmp_path: Path, reference_timing: dict[str, Any],
) -> None:
    path = write(tmp_path, "name: x\nencryption: true\nsteps:\n"
                 "  - kind: wrong-key-node\n    id: n2\n")
    with pytest.raises(ScenarioError, match="n2"):
        schedule(load_scenario(path), ["n1", "n2", "n3"], 1, reference_timing)
    bad = write(tmp_path, "name: x\nsteps:\n  - kind: wrong-key-node\n    shape: halves\n")
    with pytest.raises(ScenarioError, match="shape"):
        load_scenario(bad)


def test_the_run_key_needs_the_capability_and_key_args() -> None:
    from dataclasses import replace


    reference = load_manifest("reference")
    security = load_scenario("security")
    key = run_manifest(reference, security).gossip_key
    assert key is not None and key != run_manifest(reference, security).gossip_key
    assert run_manifest(reference, load_scenario("default")).gossip_key is None
    no_cap = replace(reference, capabilities=[c for c in reference.capabilities
                                              if c != "encryption"])
    assert run_manifest(no_cap, security).gossip_key is None
    assert reference.process is not None
    no_args = replace(reference, process=replace(reference.process, key_args=[]),
                      docker=None)
    assert run_manifest(no_args, security).gossip_key is None


def _admission(tmp_path: Path, right_key: bool) -> str:
    """Run three encrypted reference nodes and an extra node, read members while it tries
    to join, and judge SEC-WRONG-KEY on the history."""
    import time

    from gossipcert.harness.drivers.cluster import Cluster
    from gossipcert.harness.judging.verdict import load_catalogue
    from gossipcert.harness.workloads.capabilities import run_checks

    manifest = run_manifest(load_manifest("reference"), load_scenario("security"))
    cluster = Cluster(manifest, 3, tmp_path, seed=5)
    cluster.history.append("meta", "run", args={
        "nodes": cluster.node_ids, "timing": manifest.timing,
        "capabilities": manifest.capabilities, "conflict_policy": manifest.conflict_policy})
    with cluster:
        cluster.start_intruder("x1", "n1", key=manifest.gossip_key if right_key else None)
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline:
            cluster.read_round("members")
            time.sleep(0.3)
        cluster.stop_intruder("x1")
        assert cluster.live_nodes() == ["n1", "n2", "n3"]
    catalogue = [r for r in load_catalogue() if r.id == "SEC-WRONG-KEY"]
    (verdict,) = run_checks(cluster.history.entries(), catalogue)
    return str(verdict.status)


@pytest.mark.slow
def test_a_node_with_the_runs_own_key_fails_the_wrong_key_check(tmp_path: Path) -> None:
    # The checker's must-fail case: an "intruder" that holds the right key gets in.
    assert _admission(tmp_path, right_key=True) == "fail"
    assert orphaned_processes() == {}


@pytest.mark.slow
def test_a_node_with_a_wrong_key_is_kept_out(tmp_path: Path) -> None:
    assert _admission(tmp_path, right_key=False) == "pass"
    assert orphaned_processes() == {}
