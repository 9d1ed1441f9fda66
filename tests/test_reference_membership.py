"""Membership of the reference node: Lifeguard, nacks, the buddy system, reaping.

Core tests drive the sans-IO node on the simulator (virtual clock, simulated network, every
message carried through the wire codec); the metrics test at the end runs real nodes.
"""

from __future__ import annotations

import math

import pytest
from gossipcert.reference_node.core import Node, NodeConfig, Status
from gossipcert.reference_node.core.awareness import Awareness
from gossipcert.reference_node.core.hlc import Timestamp
from gossipcert.reference_node.core.messages import (
    FullState,
    Gossip,
    MemberUpdate,
    Nack,
    Ping,
    PushPull,
)
from gossipcert.reference_node.core.suspicion import (
    expected_confirmations,
    lifeguard_timeout_ms,
    suspicion_timeout_ms,
)
from gossipcert.reference_node.sim import Simulation
from test_reference_core import (
    cluster,
    member_events,
    record_sent,
    run_until,
    sees_all_alive,
    statuses_seen,
)
from test_reference_runtime import http, spawn, stop, wait_for

IDS = ["a", "b", "c", "d", "e"]


def rumor(*updates: MemberUpdate, sender: str = "x") -> Gossip:
    return Gossip(sender=sender, sender_addr=f"{sender}:7946", hlc=Timestamp(1, 0), updates=updates)


def suspect(member: str, by: str, incarnation: int = 0) -> MemberUpdate:
    return MemberUpdate(member, f"{member}:7946", Status.SUSPECT, incarnation, by=by)


# ---- Lifeguard suspicion ---------------------------------------------------------------


def test_lifeguard_timeout_formula_matches_reference() -> None:
    low = suspicion_timeout_ms(4, 5, 300)
    assert low == 1200
    high = 6 * low
    k = expected_confirmations(4, 5)
    assert k == 2
    assert lifeguard_timeout_ms(low, high, k, 0) == 7200
    expected_one = math.floor(7200 - math.log(2) / math.log(3) * 6000)
    assert lifeguard_timeout_ms(low, high, k, 1) == expected_one == 3414
    assert lifeguard_timeout_ms(low, high, k, 2) == 1200
    assert lifeguard_timeout_ms(low, high, k, 9) == 1200  # floored at min
    # Too few members to confirm: k = 0 and the timer is just `min`.
    assert expected_confirmations(4, 3) == 0
    assert lifeguard_timeout_ms(low, high, 0, 0) == low
    assert expected_confirmations(3, 10) == 1
    # memberlist LAN at N = 100: 8 s / 48 s.
    assert suspicion_timeout_ms(4, 100, 1000) == 8000


def test_suspicion_starts_at_max_and_shrinks_with_distinct_confirmations() -> None:
    sim = cluster(IDS)
    node = sim.node("a")
    start = sim.now_ms
    node.receive(rumor(suspect("e", by="b")), start)
    suspicion = node._suspicions["e"]
    assert suspicion.deadline_ms() == start + 7200
    node.receive(rumor(suspect("e", by="b")), start + 10)  # the originator again: nothing
    assert suspicion.deadline_ms() == start + 7200
    node.receive(rumor(suspect("e", by="c"), sender="d"), start + 20)
    assert suspicion.deadline_ms() == start + 3414
    node.receive(rumor(suspect("e", by="c"), sender="b"), start + 30)  # relayed: same
    assert suspicion.deadline_ms() == start + 3414
    node.receive(rumor(suspect("e", by="d")), start + 40)
    assert suspicion.deadline_ms() == start + 1200
    # A confirmation is gossiped on, so other members can count it too.
    assert node.queue.transmits("m:e") == 0
    # A suspicion of an older incarnation confirms nothing.
    node.receive(rumor(suspect("e", by="b", incarnation=0)), start + 50)
    node.tick(start + 1199)
    assert node.members.get("e").status is Status.SUSPECT  # type: ignore[union-attr]
    node.tick(start + 1200)
    assert node.members.get("e").status is Status.DEAD  # type: ignore[union-attr]


def test_lone_suspicion_waits_for_max() -> None:
    sim = cluster(IDS)
    node = sim.node("a")
    start = sim.now_ms
    node.receive(rumor(suspect("e", by="b")), start)
    node.tick(start + 7199)
    assert node.members.get("e").status is Status.SUSPECT  # type: ignore[union-attr]
    node.tick(start + 7200)
    assert node.members.get("e").status is Status.DEAD  # type: ignore[union-attr]


def test_crash_seen_by_everyone_is_declared_well_before_max() -> None:
    sim = cluster(IDS)
    sim.run_for(2_000)
    sent = record_sent(sim)
    sim.crash("e")
    crashed_at = sim.now_ms
    elapsed = run_until(
        sim, lambda: all(sim.status_seen(i, "e") is Status.DEAD for i in IDS[:-1]), 20_000
    )
    assert elapsed is not None
    events = [
        e
        for o in IDS[:-1]
        for e in member_events(sim, o)
        if e.member == "e" and e.at_ms >= crashed_at
    ]
    first_suspect = min(e.at_ms for e in events if e.status is Status.SUSPECT)
    first_dead = min(e.at_ms for e in events if e.status is Status.DEAD)
    # Independent confirmations from the three live probers shrink the timer from
    # max (7.2 s) towards min (1.2 s); without them the first dead would take 7.2 s.
    assert 1200 <= first_dead - first_suspect < 7200
    suspects = {
        u.by
        for _, _, m in sent
        for u in m.updates
        if isinstance(u, MemberUpdate) and u.member == "e" and u.status is Status.SUSPECT
    }
    assert len(suspects - {""}) >= 2, "independent suspecters must announce themselves"


# ---- nacks and local health awareness --------------------------------------------------


def test_awareness_score_is_bounded_and_scales() -> None:
    awareness = Awareness(8)
    assert awareness.apply(-1) == 0
    for _ in range(20):
        awareness.apply(+1)
    assert awareness.score == 7
    assert awareness.scale(300) == 2400
    with pytest.raises(ValueError):
        Awareness(0)


def test_helpers_nack_so_a_healthy_prober_keeps_its_score() -> None:
    sim = cluster(IDS)
    sent = record_sent(sim)
    sim.crash("e")
    sim.run_for(6_000)
    nacks = [(src, dest) for src, dest, m in sent if isinstance(m, Nack)]
    assert nacks, "ping-req helpers must nack when the target stays silent"
    for node_id in IDS[:-1]:
        assert sim.node(node_id).awareness.score == 0


def test_a_node_cut_off_from_everyone_raises_its_score_and_slows_its_probes() -> None:
    sim = cluster(IDS)
    sim.run_for(1_000)
    # a's outbound links all drop: it hears the others but none of its pings, ping-reqs
    # or acks get out, so no nack can come back either. a is the unhealthy one.
    for other in IDS[1:]:
        sim.cut("a", other)
    sent = record_sent(sim)
    sim.run_for(20_000)
    assert sim.node("a").awareness.score == 7
    pings_by = {
        node_id: sum(1 for src, _, m in sent if src == node_id and isinstance(m, Ping))
        for node_id in IDS
    }
    # Healthy members probe once per 300 ms period; a stretches its period up to 8x.
    assert pings_by["a"] * 3 < pings_by["b"]
    for node_id in IDS[1:]:
        assert sim.node(node_id).awareness.score <= 1


def test_having_to_refute_raises_the_score() -> None:
    sim = cluster(["a", "b", "c"])
    c = sim.node("c")
    c.receive(rumor(suspect("c", by="a")), sim.now_ms)
    assert c.incarnation == 1 and c.awareness.score == 1


def test_buddy_system_ping_to_a_suspect_carries_the_suspicion() -> None:
    sim = cluster(["a", "b", "c"])
    b = sim.node("b")
    # Only b hears the suspicion; c can learn of it first from b's probe.
    b.receive(rumor(suspect("c", by="x")), sim.now_ms)
    b.queue = type(b.queue)()  # nothing left to piggyback: only the ping can tell c
    sent = record_sent(sim)
    assert run_until(sim, lambda: sim.node("c").incarnation >= 1, 3_000) is not None
    pings = [m for src, dest, m in sent if (src, dest) == ("b", "c") and isinstance(m, Ping)]
    assert pings and any(
        isinstance(u, MemberUpdate) and u.member == "c" and u.status is Status.SUSPECT
        for u in pings[0].updates
    )
    assert run_until(sim, lambda: sim.status_seen("b", "c") is Status.ALIVE, 3_000) is not None


# ---- reaping ---------------------------------------------------------------------------


def reaping_cluster() -> Simulation:
    return cluster(IDS, reap_after_ms=3_000)


def test_dead_member_is_reaped_and_stale_gossip_does_not_bring_it_back() -> None:
    sim = reaping_cluster()
    sim.crash("e")
    assert run_until(
        sim, lambda: all(sim.status_seen(i, "e") is Status.DEAD for i in IDS[:-1]), 15_000
    )
    assert run_until(sim, lambda: all(sim.status_seen(i, "e") is None for i in IDS[:-1]), 6_000)
    a = sim.node("a")
    reaped_at = a.reaped()["e"]
    # A stale alive and a peer's old full state both stay out.
    a.receive(rumor(MemberUpdate("e", "e:7946", Status.ALIVE, reaped_at)), sim.now_ms)
    old_state = PushPull(
        sender="b",
        sender_addr="b:7946",
        hlc=Timestamp(1, 0),
        state=FullState(members=(MemberUpdate("e", "e:7946", Status.DEAD, reaped_at),)),
        reply=True,
    )
    a.receive(old_state, sim.now_ms)
    assert sim.status_seen("a", "e") is None
    sim.run_for(5_000)
    assert all(sim.status_seen(i, "e") is None for i in IDS[:-1])
    assert Status.ALIVE not in {
        e.status for o in IDS[:-1] for e in member_events(sim, o) if e.member == "e" and e.seq > 5
    }


def test_left_member_is_reaped_and_a_restart_rejoins_above_the_reaped_incarnation() -> None:
    sim = reaping_cluster()
    sim.leave("e")
    assert run_until(sim, lambda: all(sim.status_seen(i, "e") is None for i in IDS[:-1]), 10_000)
    left_incarnation = sim.node("a").reaped()["e"]
    # A fresh process under the same id, without its data: incarnation 0.
    sim.restart("e", data_dir=False, keep_incarnation=False, seeds=["a"])
    reborn = sim.node("e")
    assert run_until(sim, lambda: all(sees_all_alive(sim, i) for i in IDS), 5_000) is not None
    assert reborn.incarnation > left_incarnation
    for node_id in IDS[:-1]:
        assert "e" not in sim.node(node_id).reaped()
    assert Status.DEAD not in statuses_seen(sim, "e")


def test_restored_incarnation_starts_above_every_used_one() -> None:
    node = Node(NodeConfig(node_id="a", gossip_address="a:1"), 0)
    node.restore_incarnation(41, 5)
    assert node.incarnation == 42
    node.restore_incarnation(3, 6)  # never goes down
    assert node.incarnation == 42


# ---- metrics over the control API ------------------------------------------------------


@pytest.mark.slow
def test_metrics_break_traffic_down_and_report_rounds_queues_and_health() -> None:
    a = spawn("ma", "127.0.0.26")
    b = spawn("mb", "127.0.0.26")
    try:
        wait_for(lambda: a.get("/v1/node")["ready"] and b.get("/v1/node")["ready"], 10)
        assert http("POST", b.url("/v1/join"), {"seeds": [a.gossip]})[0] == 200
        wait_for(lambda: a.get("/v1/metrics")["rounds"]["probe"] >= 3, 10)
        metrics = a.get("/v1/metrics")
        for field in ("messages_sent", "messages_received", "bytes_sent", "bytes_received"):
            assert isinstance(metrics[field], int) and metrics[field] > 0
        sent = metrics["by_direction"]["sent"]
        assert sent["ping"]["messages"] >= 3 and sent["ping"]["bytes"] > 0
        assert metrics["by_direction"]["received"]["ack"]["messages"] >= 1
        assert sum(row["messages"] for row in sent.values()) == metrics["messages_sent"]
        assert metrics["by_type"]["ping"]["messages_sent"] == sent["ping"]["messages"]
        assert metrics["rounds"]["gossip"] >= 1 and "push_pull" in metrics["rounds"]
        assert set(metrics["queues"]) >= {"piggyback", "outbound_bytes", "suspicions"}
        assert metrics["awareness_score"] == 0
        assert set(metrics["dropped"]) >= {"decrypt_failed", "replayed", "malformed"}
        assert metrics["dropped"]["malformed"] == 0
    finally:
        stop([a, b])
