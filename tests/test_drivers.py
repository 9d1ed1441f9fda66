"""One cluster interface, two drivers: every shipped scenario compiles to one sequence of
operations, which runs on the simulated driver (reference cores in the simulator) and on
the process backend, and the same checkers judge both histories.

The simulated half is here and fast (virtual time). The process half is slow (real nodes,
real proxies): that the process backend runs exactly the planned sequence and passes what
it exercises is checked for every shipped scenario by ``tests/test_scenarios.py`` (one by
one) and ``test_certify_e2e.check_full_suite`` (the reference node's full suite).
"""

from __future__ import annotations

import pytest
from gossipcert.harness.judging.verdict import load_catalogue
from gossipcert.harness.manifest import load_manifest
from gossipcert.harness.run.pipeline import simulate
from gossipcert.harness.workloads.scenario import (
    load_scenario,
    run_manifest,
    schedule,
    shipped_scenarios,
)

SHIPPED = sorted(shipped_scenarios())
NODES = [f"n{i}" for i in range(1, 6)]
SEED = 7


def _named(name: str) -> set[str]:
    """The MUST requirements whose scenario this is: what it must exercise and pass."""
    return {r.id for r in load_catalogue() if r.scenario == name and r.level == "MUST"}


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_scenario_runs_in_simulation(name: str) -> None:
    scenario = load_scenario(name)
    manifest = run_manifest(load_manifest("reference"), scenario)
    ops = schedule(scenario, NODES, SEED, manifest.timing)
    verdicts, entries = simulate(ops, NODES, timing=manifest.timing,
                                 policy=manifest.conflict_policy, seed=SEED,
                                 gossip_key=manifest.gossip_key, scenario=name)
    by_id = {v.id: v for v in verdicts}
    failed = {v.id: v.evidence for v in verdicts if v.status == "fail"}
    assert failed == {}
    for rid in _named(name):
        assert by_id[rid].status == "pass", (rid, by_id[rid].status, by_id[rid].evidence)
    # The history holds the sequence that produced it.
    steps = [e for e in entries if e.type == "step"]
    assert [s.args for s in steps] == [op.to_json() for op in ops
                                       if op.needs is None or op.needs in manifest.capabilities
                                       if not getattr(op, "when", "")
                                       or op.when in manifest.capabilities]


def test_a_step_of_a_capability_not_claimed_is_skipped_not_refused() -> None:
    """An implementation without a graceful leave gets no leave call: the churn
    scenario's leave step is skipped, the run goes on, and MEM-LEAVE is not claimed."""
    from gossipcert.harness.drivers.simulated import REFERENCE_CAPABILITIES, SimulatedCluster
    from gossipcert.harness.workloads.capabilities import run_checks
    from gossipcert.harness.workloads.interpreter import Execution

    timing = dict(load_manifest("reference").timing)
    nodes = ["n1", "n2", "n3", "n4"]
    ops = schedule(load_scenario("churn"), nodes, 1, timing)
    catalogue = load_catalogue()
    without_leave = [c for c in REFERENCE_CAPABILITIES if c != "leave"]
    with SimulatedCluster(nodes, timing=timing, capabilities=without_leave) as cluster:
        cluster.history.append("meta", "run", args={
            "implementation": "no leave", "nodes": nodes, "timing": timing,
            "capabilities": without_leave, "conflict_policy": "lww"})
        Execution(cluster, catalogue, timing).run(ops)
        entries = cluster.history.entries()
    assert not [e for e in entries if e.op == "leave"]
    assert sorted(cluster.live_nodes()) == nodes
    verdicts = {v.id: v for v in run_checks(entries, catalogue)}
    assert verdicts["MEM-LEAVE"].status == "not-claimed"
    assert verdicts["KV-CONVERGENCE"].status == "pass", verdicts["KV-CONVERGENCE"].evidence


def test_awaits_of_a_capability_the_node_refused_are_skipped() -> None:
    """A node declaring broadcast but answering 501 to it: the broadcast is refused (the
    checkers fail it as a contract violation), and the await that follows is skipped
    instead of waiting out BCAST-DELIVERY's bound; a served broadcast is awaited."""
    from gossipcert.harness.drivers.simulated import REFERENCE_CAPABILITIES, SimulatedCluster
    from gossipcert.harness.workloads import operations as o
    from gossipcert.harness.workloads.broadcast import Broadcast
    from gossipcert.harness.workloads.interpreter import Execution
    from gossipcert.harness.workloads.membership import Join

    timing = dict(load_manifest("reference").timing)
    nodes = ["n1", "n2", "n3"]
    ops = [Join("n2"), Join("n3"), o.AwaitMembers(), Broadcast("n1", "b1"),
           o.AwaitDelivery("b1")]
    for refuse in (True, False):
        with SimulatedCluster(nodes, timing=timing,
                              capabilities=list(REFERENCE_CAPABILITIES)) as cluster:
            serve = cluster.sim.request

            def request(node: str, method: str, path: str, payload: object = None,
                        serve=serve, refuse=refuse) -> tuple[int, object]:
                if refuse and "broadcast" in path:
                    return 501, {"error": "not_implemented", "message": "no broadcast"}
                return serve(node, method, path, payload)

            cluster.sim.request = request  # type: ignore[method-assign]
            execution = Execution(cluster, load_catalogue(), timing)
            execution.run(ops)
            steps = [e for e in cluster.history.entries() if e.type == "step"]
        kinds = [s.op for s in steps]
        if refuse:
            assert execution.refused("broadcast")
            assert kinds[-1] == "note" and "answered 501" in steps[-1].args["text"], kinds
        else:
            assert not execution.refused("broadcast")
            assert kinds[-1] == "await-delivery", kinds
