"""The discrete-event simulator, and the shared member-table storage that lets it hold
10,000 nodes: reproducible from the seed, and faithful to the core under faults."""

from __future__ import annotations

import math
import random
import statistics

import pytest
from gossipcert.reference_node.core import Status
from gossipcert.reference_node.core.membership import Member, MemberBase, MemberTable
from gossipcert.reference_node.core.messages import MemberUpdate
from gossipcert.reference_node.core.probing import ProbeOrder
from gossipcert.reference_node.core.suspicion import suspicion_timeout_ms
from gossipcert.reference_node.sim import Simulation, gossip_only
from simulated_runs import reference_timing

# Fast SWIM timing, as the harness runs the reference node (its manifest's).
SWIM = reference_timing()


def _run_with_faults(seed: int) -> Simulation:
    sim = Simulation(12, SWIM, seed, latency_ms=5, jitter_ms=10, loss=0.05, trace=True)
    sim.bootstrap()
    sim.run_for(1_000)
    sim.broadcast("n00", "hello", {"x": 1})
    sim.crash("n05")
    sim.at(sim.now_ms + 500, lambda: sim.partition([["n01", "n02", "n03"]]))
    sim.at(sim.now_ms + 1_500, sim.heal)
    sim.run_for(4_000)
    return sim


def test_one_seed_gives_one_run_event_for_event() -> None:
    first, second = _run_with_faults(7), _run_with_faults(7)
    assert first.trace is not None and second.trace is not None
    assert len(first.trace) > 1_000
    assert first.trace == second.trace
    assert first.sent == second.sent and first.dropped == second.dropped
    other = _run_with_faults(8)
    assert other.trace != first.trace


def test_a_broadcast_reaches_all_of_200_nodes_in_about_log_n_rounds() -> None:
    sim = Simulation(200, gossip_only(mode="push-pull"), seed=3)
    sim.bootstrap()
    assert sim.run_until_quiet()
    start = sim.now_ms
    sim.broadcast("n000", "b1")
    assert sim.run_until_delivered("b1", 10_000)
    delivered = sim.delivered["b1"]
    assert sorted(delivered) == sim.ids
    rounds = math.ceil((max(delivered.values()) - start) / 200)
    # Karp et al.: log3 n + O(log log n) rounds; allow a wide margin for one seed.
    assert rounds <= 3 * (math.log(200, 3) + math.log(math.log(200)))
    assert all(sum(d.id == "b1" for d in node.delivered_broadcasts()) == 1 for node in sim.nodes)


def test_a_crash_is_detected_by_every_member_within_the_swim_bound() -> None:
    n = 16
    sim = Simulation(n, SWIM, seed=11, latency_ms=2)
    sim.bootstrap()
    sim.run_for(2_000)
    crashed_at = sim.now_ms
    sim.crash("n07")
    assert sim.run_until_true(lambda: sim.all_see("n07", Status.DEAD), 60_000)
    took = sim.now_ms - crashed_at
    low = suspicion_timeout_ms(SWIM["suspicion_mult"], n, SWIM["probe_interval_ms"])
    bound = (2 * n - 1) * SWIM["probe_interval_ms"] + 6 * low + 2_000
    assert low <= took <= bound


def test_halves_that_declared_each_other_dead_converge_after_the_heal() -> None:
    sim = Simulation(10, SWIM, seed=5, latency_ms=2)
    sim.bootstrap()
    sim.run_for(1_000)
    left, right = sim.ids[:5], sim.ids[5:]
    sim.partition([left, right])
    assert sim.run_until_true(
        lambda: sim.all_see(right[0], Status.DEAD, among=left), 60_000, check_every_ms=50
    )
    assert sim.dropped["partition"] > 0
    sim.heal()
    assert sim.run_until_true(
        lambda: all(sim.all_see(m, Status.ALIVE) for m in sim.ids), 60_000, check_every_ms=50
    )


def test_loss_slows_dissemination_but_does_not_stop_it() -> None:
    def rounds(seed: int, loss: float) -> int:
        sim = Simulation(200, gossip_only(mode="push"), seed, loss=loss)
        sim.bootstrap()
        assert sim.run_until_quiet()
        start = sim.now_ms
        sim.broadcast("n000", "b")
        assert sim.run_until_delivered("b", 30_000), f"not all reached at loss {loss}"
        assert (sim.dropped["loss"] > 0) == (loss > 0)
        return math.ceil((max(sim.delivered["b"].values()) - start) / 200)

    clean = statistics.mean(rounds(seed, 0.0) for seed in range(4))
    lossy = statistics.mean(rounds(seed, 0.3) for seed in range(4))
    assert lossy > clean


def test_a_restarted_node_rejoins_above_its_old_incarnation() -> None:
    sim = Simulation(8, SWIM, seed=2, latency_ms=2)
    sim.bootstrap()
    sim.run_for(500)
    assert sim.ids[3] == "n3"  # ids are zero-padded to the width of n - 1
    sim.crash("n3")
    assert sim.run_until_true(lambda: sim.all_see("n3", Status.DEAD), 60_000)
    old = sim.node("n1").members.get("n3")
    assert old is not None
    sim.restart("n3")
    assert sim.run_until_true(lambda: sim.all_see("n3", Status.ALIVE), 60_000)
    again = sim.node("n1").members.get("n3")
    assert again is not None and again.incarnation > old.incarnation


def test_bad_simulation_arguments_are_refused_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match="n must be at least 1"):
        Simulation(0)
    with pytest.raises(ValueError, match="loss must be in"):
        Simulation(3, loss=1.0)
    with pytest.raises(ValueError, match="unknown NodeConfig fields: bogus"):
        Simulation(3, {"bogus": 1})
    with pytest.raises(ValueError, match="sets node_id"):
        Simulation(3, {"node_id": "x"})
    sim = Simulation(3)
    with pytest.raises(ValueError, match="in the past"):
        sim.at(-1, lambda: None)


# ---- the storage behind 10,000 nodes ----------------------------------------------------


def _random_updates(rng: random.Random, ids: list[str], count: int) -> list[MemberUpdate]:
    statuses = list(Status)
    return [
        MemberUpdate(rng.choice(ids), "addr", rng.choice(statuses), rng.randint(0, 3))
        for _ in range(count)
    ]


@pytest.mark.parametrize("seed", range(20))
def test_a_table_over_a_shared_base_behaves_as_a_plain_table(seed: int) -> None:
    rng = random.Random(seed)
    ids = [f"m{i:02d}" for i in range(30)]
    initial = [Member(i, "addr", Status.ALIVE, 0, 0) for i in ids[:20]]
    plain, layered = MemberTable(), MemberTable(MemberBase(initial))
    for member in initial:
        plain.set(member)
    other = MemberTable(MemberBase(initial))  # a second table on the same base
    for step, update in enumerate(_random_updates(rng, ids, 200)):
        if step % 17 == 0:
            assert plain.remove(update.member) == layered.remove(update.member)
        else:
            assert plain.apply(update, step) == layered.apply(update, step)
        for statuses in ((Status.ALIVE, Status.SUSPECT), (Status.DEAD, Status.LEFT)):
            exclude = rng.choice(ids)
            assert plain.ids_with(*statuses, exclude=exclude) == layered.ids_with(
                *statuses, exclude=exclude
            )
        assert plain.live_count() == layered.live_count()
        assert len(plain) == len(layered)
        assert sorted(plain, key=lambda m: m.id) == sorted(layered, key=lambda m: m.id)
        assert [m.id for m in plain.down()] == [m.id for m in layered.down()]
    assert other.ids_with(Status.ALIVE) == ids[:20] and len(other) == 20


def test_probe_order_visits_every_member_once_per_pass_and_takes_in_joiners() -> None:
    order = ProbeOrder(random.Random(4))
    members = [f"m{i:03d}" for i in range(40)]
    first_pass = [order.next(members) for _ in range(40)]
    assert sorted(first_pass) == members  # type: ignore[type-var]
    # A member that joins mid-pass is probed before the pass ends, and nobody twice.
    grown = sorted([*members, "z-new"])
    second_pass = [order.next(members) for _ in range(20)]
    order.add("z-new")
    second_pass += [order.next(grown) for _ in range(21)]
    assert sorted(second_pass) == grown  # type: ignore[type-var]
    # A member that stops being a candidate is skipped, never returned.
    without = [m for m in grown if m != "m007"]
    assert "m007" not in [order.next(without) for _ in range(80)]
    assert order.next([]) is None
