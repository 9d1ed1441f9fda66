"""The reference node's sans-IO core, driven through inputs and effects alone.

Cluster tests run on the simulator (`reference_node.sim`): a virtual clock, 2 ms links,
per-directed-link cuts, and every message carried over the wire (the codec and the
framing the runtime uses). `record_sent` keeps what each node sent and checks that the
codec gives back exactly the message that was encoded.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import pathlib
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from gossipcert.reference_node.core import Node, NodeConfig, Status
from gossipcert.reference_node.core.codec import DecodeError, decode_message, encode_message
from gossipcert.reference_node.core.dissemination import TransmitQueue, retransmit_limit
from gossipcert.reference_node.core.events import BroadcastEvent, MemberEvent
from gossipcert.reference_node.core.hlc import HybridClock, Timestamp
from gossipcert.reference_node.core.kv import KvStore
from gossipcert.reference_node.core.messages import (
    BroadcastUpdate,
    Gossip,
    KvUpdate,
    MemberUpdate,
    Message,
    PingReq,
    PushPull,
)
from gossipcert.reference_node.core.suspicion import suspicion_timeout_ms
from gossipcert.reference_node.framing import FrameDecoder, FrameError, encode_frame
from gossipcert.reference_node.sim import Simulation
from simulated_runs import reference_timing

# The harness's timing (the reference manifest's).
TIMING = reference_timing()
LATENCY_MS = 2
START_MS = 1_000_000

Sent = list[tuple[str, str, Message]]
"""(sender, receiver, message) for every message sent; receiver "?" for a seed."""


def simulation(ids: Sequence[str], *, start_ms: int = START_MS, **overrides: Any) -> Simulation:
    """`ids` running, none joined yet, on the wire."""
    return Simulation(
        ids=list(ids),
        config={**TIMING, **overrides},
        latency_ms=LATENCY_MS,
        start_ms=start_ms,
        wire=True,
    )


def cluster(ids: Sequence[str], **options: Any) -> Simulation:
    """`ids` joined through the first; returns once all see all alive."""
    sim = simulation(ids, **options)
    for node_id in ids[1:]:
        sim.join(node_id, [ids[0]])
    assert sim.run_until_true(lambda: all(sees_all_alive(sim, i) for i in ids), 15_000)
    return sim


def record_sent(sim: Simulation) -> Sent:
    sent: Sent = []

    def hook(at_ms: int, src: str, to_id: str | None, message: Message) -> None:
        wire = json.loads(json.dumps(encode_message(message)))
        assert decode_message(wire) == message
        sent.append((src, to_id or "?", message))

    sim.on_send(hook)
    return sent


def run_until(sim: Simulation, done: Callable[[], bool], timeout_ms: int) -> int | None:
    """Advance virtual time until `done()`; the elapsed ms, or None on timeout."""
    start = sim.now_ms
    return sim.now_ms - start if sim.run_until_true(done, timeout_ms) else None


def sees_all_alive(sim: Simulation, observer: str) -> bool:
    return all(sim.status_seen(observer, m) is Status.ALIVE for m in sim.live_ids())


def member_events(sim: Simulation, observer: str) -> list[MemberEvent]:
    return [e for e in sim.node(observer).events_after(0) if isinstance(e, MemberEvent)]


def statuses_seen(sim: Simulation, member: str) -> set[Status]:
    return {
        e.status for observer in sim.ids for e in member_events(sim, observer) if e.member == member
    }


# ---- membership ------------------------------------------------------------------------


def test_join_through_a_seed_spreads_everyone_alive() -> None:
    sim = simulation("abcd")
    sim.join("b", ["a"])
    assert sim.node("a").ready and not sim.node("b").ready
    sim.join("c", ["a"])
    sim.join("d", ["b"])
    elapsed = run_until(sim, lambda: all(sees_all_alive(sim, i) for i in "abcd"), 5_000)
    assert elapsed is not None
    assert all(n.ready for n in sim.nodes)
    first = member_events(sim, "a")[0]
    assert (first.seq, first.member, first.status) == (1, "a", Status.ALIVE)


def test_probe_is_acked_and_a_quiet_cluster_never_suspects() -> None:
    sim = cluster(["a", "b", "c", "d", "e"])
    sent = record_sent(sim)
    sim.run_for(30_000)
    kinds = {(m.kind, src, dest) for src, dest, m in sent}
    assert ("ping", "a", "b") in kinds and ("ack", "b", "a") in kinds
    for node_id in sim.ids:
        assert {e.status for e in member_events(sim, node_id)} == {Status.ALIVE}


def test_indirect_probe_bridges_a_one_way_cut() -> None:
    sim = cluster(["a", "b", "c"])
    sent = record_sent(sim)
    sim.cut("a", "c")  # a's pings to c vanish; c -> a still works
    sim.run_for(10_000)
    assert any(isinstance(m, PingReq) and src == "a" for src, _, m in sent)
    assert statuses_seen(sim, "c") == {Status.ALIVE}


def test_crashed_member_is_suspected_then_dead_after_the_timeout() -> None:
    ids = ["a", "b", "c", "d", "e"]
    sim = cluster(ids)
    sim.run_for(2_000)
    sim.crash("e")
    crashed_at = sim.now_ms
    elapsed = run_until(
        sim, lambda: all(sim.status_seen(i, "e") is Status.DEAD for i in ids[:-1]), 20_000
    )
    assert elapsed is not None
    n = 5
    bound = (2 * n - 1) * 300 + suspicion_timeout_ms(4, n, 300) + 1_000
    assert elapsed <= bound
    for observer in ids[:-1]:
        events = [e for e in member_events(sim, observer) if e.member == "e"]
        suspect = next(e for e in events if e.status is Status.SUSPECT)
        dead = next(e for e in events if e.status is Status.DEAD)
        assert suspect.at_ms >= crashed_at
        assert dead.at_ms > suspect.at_ms
    # The first suspecter waits the full suspicion timeout before declaring dead.
    firsts = [
        [e for e in member_events(sim, o) if e.member == "e" and e.status is not Status.ALIVE]
        for o in ids[:-1]
    ]
    first_suspect = min(f[0].at_ms for f in firsts)
    first_dead = min(f[-1].at_ms for f in firsts)
    assert first_dead - first_suspect >= suspicion_timeout_ms(4, n, 300)


def test_restarted_member_rejoins_over_its_own_dead_record() -> None:
    ids = ["a", "b", "c", "d"]
    sim = cluster(ids)
    sim.crash("d")
    assert run_until(
        sim, lambda: all(sim.status_seen(i, "d") is Status.DEAD for i in "abc"), 10_000
    )
    # A fresh process without its data: incarnation 0 again.
    sim.restart("d", data_dir=False, keep_incarnation=False, seeds=["b"])
    reborn = sim.node("d")
    assert reborn.incarnation == 0
    assert run_until(sim, lambda: all(sees_all_alive(sim, i) for i in ids), 5_000) is not None
    assert reborn.ready and reborn.incarnation >= 1


def test_suspected_member_refutes_with_a_higher_incarnation() -> None:
    sim = cluster(["a", "b", "c"])
    a = sim.node("a")
    rumor = Gossip(
        sender="a",
        sender_addr=sim.address("a"),
        hlc=a.clock.now(sim.now_ms),
        updates=(MemberUpdate("c", sim.address("c"), Status.SUSPECT, 0),),
    )
    sim.call("b", lambda node, now: node.receive(rumor, now))
    sim.call("c", lambda node, now: node.receive(rumor, now))
    assert sim.node("c").incarnation == 1

    def refuted_everywhere() -> bool:
        views = [n.members.get("c") for n in sim.nodes]
        return all(v is not None and (v.status, v.incarnation) == (Status.ALIVE, 1) for v in views)

    assert run_until(sim, refuted_everywhere, 3_000) is not None
    assert Status.DEAD not in statuses_seen(sim, "c")


def test_stale_alive_never_resurrects_a_dead_member() -> None:
    node = Node(NodeConfig(node_id="a", gossip_address="a:1", **TIMING), 0)

    def tell(status: Status, incarnation: int) -> None:
        message = Gossip(
            sender="x",
            sender_addr="x:1",
            hlc=Timestamp(1, 0),
            updates=(MemberUpdate("b", "b:1", status, incarnation),),
        )
        node.receive(message, 10)

    tell(Status.DEAD, 3)
    tell(Status.ALIVE, 2)
    tell(Status.ALIVE, 3)
    tell(Status.SUSPECT, 3)
    member = node.members.get("b")
    assert member is not None and (member.status, member.incarnation) == (Status.DEAD, 3)
    tell(Status.ALIVE, 4)
    member = node.members.get("b")
    assert member is not None and (member.status, member.incarnation) == (Status.ALIVE, 4)
    tell(Status.LEFT, 4)
    tell(Status.DEAD, 4)
    member = node.members.get("b")
    assert member is not None and member.status is Status.LEFT


def test_graceful_leave_ends_as_left_never_dead() -> None:
    ids = ["a", "b", "c", "d"]
    sim = cluster(ids)
    sim.leave("d")
    assert run_until(
        sim, lambda: all(sim.status_seen(i, "d") is Status.LEFT for i in ids[:-1]), 3_000
    )
    sim.run_for(10_000)  # long past the linger, the leaver is silent
    assert sim.node("d").stopped
    assert all(sim.status_seen(i, "d") is Status.LEFT for i in ids[:-1])
    assert statuses_seen(sim, "d") == {Status.ALIVE, Status.LEFT}


def test_partition_longer_than_suspicion_heals_and_converges() -> None:
    ids = ["a", "b", "c", "d", "e"]
    sim = cluster(ids)
    sim.partition([["a", "b"], ["c", "d", "e"]])
    assert run_until(
        sim,
        lambda: (
            sim.status_seen("a", "c") is Status.DEAD and sim.status_seen("c", "a") is Status.DEAD
        ),
        15_000,
    )
    sim.run_for(3_000)
    sim.kv_put("a", "left-side", 1)
    sim.kv_put("d", "right-side", 2)
    sim.heal()

    def converged() -> bool:
        digests = {n.kv.digest() for n in sim.nodes}
        return len(digests) == 1 and all(sees_all_alive(sim, i) for i in ids)

    elapsed = run_until(sim, converged, 20_000)
    assert elapsed is not None and elapsed <= 6_000
    assert sim.node("e").kv.live() == {"left-side": 1, "right-side": 2}


# ---- dissemination --------------------------------------------------------------------


def test_broadcast_reaches_all_once_and_respects_the_retransmit_limit() -> None:
    ids = ["a", "b", "c", "d", "e"]
    sim = cluster(ids)
    sent = record_sent(sim)
    assert sim.call("a", lambda node, now: node.broadcast("m1", {"x": 1}, now))
    assert not sim.call("a", lambda node, now: node.broadcast("m1", {"x": 1}, now))
    sim.run_for(5_000)
    for node in sim.nodes:
        assert [d.id for d in node.delivered_broadcasts()] == ["m1"]
        assert [e.id for e in node.events_after(0) if isinstance(e, BroadcastEvent)] == ["m1"]
    limit = retransmit_limit(4, len(ids))
    for node_id in ids:
        piggybacked = sum(
            1
            for src, _, m in sent
            if src == node_id and not isinstance(m, PushPull)
            for u in m.updates
            if isinstance(u, BroadcastUpdate)
        )
        assert piggybacked <= limit


def test_transmit_queue_limit_order_and_budget() -> None:
    queue = TransmitQueue()
    old = MemberUpdate("x", "x:1", Status.ALIVE, 0)
    new = MemberUpdate("y", "y:1", Status.ALIVE, 0)
    queue.enqueue(old)
    queue.enqueue(new)
    assert queue.select(limit=2, budget_bytes=10_000) == [new, old]
    assert queue.select(limit=2, budget_bytes=10_000) == [new, old]
    assert queue.select(limit=2, budget_bytes=10_000) == []
    queue.enqueue(old)
    assert queue.select(limit=5, budget_bytes=10) == []  # too big for the budget
    assert retransmit_limit(4, 5) == 4 and retransmit_limit(4, 10) == 8


# ---- kv and clocks --------------------------------------------------------------------


def test_lww_ties_go_to_the_greater_node_id_in_any_order() -> None:
    ts = Timestamp(100, 0)
    low = KvUpdate("k", "from-a", False, ts, "a")
    high = KvUpdate("k", "from-b", False, ts, "b")
    for order in ([low, high], [high, low]):
        store = KvStore()
        for entry in order:
            store.merge(entry)
        assert store.live() == {"k": "from-b"}


def test_digest_depends_only_on_visible_state() -> None:
    one, two = KvStore(), KvStore()
    one.merge(KvUpdate("k", 1, False, Timestamp(5, 0), "a"))
    two.merge(KvUpdate("gone", 9, False, Timestamp(1, 0), "b"))
    two.merge(KvUpdate("gone", None, True, Timestamp(2, 0), "b"))
    two.merge(KvUpdate("k", 1, False, Timestamp(7, 3), "c"))
    assert one.digest() == two.digest()
    assert KvStore().digest() != one.digest()


def test_kv_write_and_delete_converge_with_tombstones() -> None:
    sim = cluster(["a", "b", "c"])
    sim.kv_put("a", "k", "v1")
    sim.run_for(1_000)
    assert all(n.kv_get("k") is not None for n in sim.nodes)
    sim.call("b", lambda node, now: node.kv_delete("k", now))
    sim.run_for(3_000)
    for node in sim.nodes:
        assert node.kv_get("k") is None
        entry = node.kv.get("k")
        assert entry is not None and entry.deleted


def test_hlc_is_monotonic_and_orders_receive_after_send() -> None:
    clock = HybridClock()
    stamps = [clock.now(t) for t in (100, 100, 90, 150, 120)]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    received = clock.observe(Timestamp(500, 7), 130)
    assert received > Timestamp(500, 7) and received > stamps[-1]
    assert clock.now(140) > received
    assert clock.now(1_000) == Timestamp(1_000, 0)


def test_local_write_beats_everything_the_node_has_seen() -> None:
    node = Node(NodeConfig(node_id="a", gossip_address="a:1", **TIMING), 0)
    future = KvUpdate("k", "remote", False, Timestamp(9_999, 4), "z")
    node.receive(Gossip(sender="z", sender_addr="z:1", hlc=Timestamp(1, 0), updates=(future,)), 10)
    mine = node.kv_put("k", "local", 20)
    assert mine.timestamp > future.timestamp
    assert node.kv.live() == {"k": "local"}


# ---- determinism, wire format, purity -------------------------------------------------


def test_same_seed_same_run() -> None:
    def trace() -> list[tuple[str, str, str]]:
        sim = simulation(["a", "b", "c", "d"])
        sent = record_sent(sim)
        for node_id in "bcd":
            sim.join(node_id, ["a"])
        sim.run_for(3_000)
        return [(s, d, m.kind) for s, d, m in sent]

    assert trace() == trace()


@pytest.mark.parametrize(
    "garbage",
    [
        None,
        [],
        {"t": "ping"},
        {"t": "nope", "from": "a", "addr": "a:1", "hlc": [1, 0]},
        {"t": "ping", "from": "a", "addr": "a:1", "hlc": [1, 0], "seq": -1, "target": "b"},
        {"t": "ack", "from": "a", "addr": "a:1", "hlc": [1, True], "seq": 1},
        {"t": "gossip", "from": "a", "addr": "a:1", "hlc": [1, 0], "u": [{"k": "m"}]},
        {"t": "push-pull", "from": "a", "addr": "a:1", "hlc": [1, 0], "state": {"kv": 3}},
    ],
)
def test_decoder_rejects_malformed_messages(garbage: Any) -> None:
    with pytest.raises(DecodeError):
        decode_message(garbage)


def test_frame_decoder_reassembles_and_rejects_oversize() -> None:
    frame = encode_frame({"hello": "world"})
    decoder = FrameDecoder()
    assert decoder.feed(frame[:3]) == []
    assert decoder.feed(frame[3:] + frame) == [frame[4:], frame[4:]]
    with pytest.raises(FrameError):
        FrameDecoder(max_frame=8).feed(frame)
    with pytest.raises(FrameError):
        FrameDecoder().feed(b"\xff\xff\xff\xff")


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        NodeConfig(node_id="a", gossip_address="a:1", probe_interval_ms=100, probe_timeout_ms=200)
    with pytest.raises(ValueError):
        dataclasses.replace(NodeConfig(node_id="a", gossip_address="a:1"), fanout=0)


FORBIDDEN = {"socket", "asyncio", "time", "threading", "selectors", "subprocess", "os"}


def test_core_imports_no_io_clock_or_thread_module() -> None:
    import gossipcert.reference_node.core as core

    sources = sorted(pathlib.Path(core.__file__).parent.glob("*.py"))
    assert len(sources) >= 8
    for path in sources:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                roots = {(node.module or "").split(".")[0]}
                if roots == {"random"}:
                    assert [a.name for a in node.names] == ["Random"], path
            else:
                roots = set()
            assert not roots & FORBIDDEN, f"{path.name} imports {roots & FORBIDDEN}"
            # Only seeded instances: `random.Random(...)`, never the module's functions.
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "random"
            ):
                assert node.attr == "Random", f"{path.name} uses random.{node.attr}"
