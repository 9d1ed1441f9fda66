"""The reference node's sans-IO core, driven through inputs and effects alone.

`Net` is a tiny deterministic driver: a virtual clock, an in-memory network with
per-directed-link cuts, and every message round-tripped through the JSON codec.
"""

from __future__ import annotations

import ast
import dataclasses
import heapq
import json
import pathlib
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from gossipcert.reference_node.core import Node, NodeConfig, SendMessage, Status
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

# The harness's timing (reference_node/manifest.yaml).
TIMING: dict[str, int] = {
    "probe_interval_ms": 300,
    "probe_timeout_ms": 150,
    "suspicion_mult": 4,
    "gossip_interval_ms": 100,
    "push_pull_interval_ms": 1000,
}
LATENCY_MS = 2


class Net:
    def __init__(self, **overrides: int) -> None:
        self.now = 1_000_000
        self.timing = {**TIMING, **overrides}
        self.nodes: dict[str, Node] = {}
        self.by_address: dict[str, str] = {}
        self.crashed: set[str] = set()
        self.cut: set[tuple[str, str]] = set()
        self.sent: list[tuple[str, str, Message]] = []
        self._queue: list[tuple[int, int, str, str, Message]] = []
        self._counter = 0

    def add(self, node_id: str, seeds: Iterable[str] = (), **overrides: Any) -> Node:
        address = f"{node_id}:7946"
        config = NodeConfig(node_id=node_id, gossip_address=address, **{**self.timing, **overrides})
        node = Node(config, self.now)
        self.nodes[node_id] = node
        self.by_address[address] = node_id
        seed_addresses = [f"{s}:7946" for s in seeds]
        if seed_addresses:
            node.join(seed_addresses, self.now)
        self._drain(node_id)
        return node

    def cluster(self, ids: list[str]) -> None:
        self.add(ids[0])
        for node_id in ids[1:]:
            self.add(node_id, seeds=[ids[0]])
        assert self.run_until(lambda: all(self.sees_all_alive(i) for i in ids), 10_000)

    def _drain(self, node_id: str) -> None:
        for effect in self.nodes[node_id].take_effects():
            if not isinstance(effect, SendMessage):
                continue
            dest = effect.to_id if effect.to_id in self.nodes else None
            dest = dest or self.by_address.get(effect.address)
            wire = json.loads(json.dumps(encode_message(effect.message)))
            message = decode_message(wire)
            assert message == effect.message
            self.sent.append((node_id, dest or "?", message))
            if dest is None or (node_id, dest) in self.cut:
                continue
            self._counter += 1
            heapq.heappush(
                self._queue, (self.now + LATENCY_MS, self._counter, node_id, dest, message)
            )

    def run(self, duration_ms: int) -> None:
        self.run_until(lambda: False, duration_ms)

    def run_until(self, done: Callable[[], bool], timeout_ms: int) -> int | None:
        """Advance virtual time until `done()`; the elapsed ms, or None on timeout."""
        start = self.now
        until = self.now + timeout_ms
        while not done():
            live = [n for i, n in self.nodes.items() if i not in self.crashed]
            deadlines = [n.next_deadline_ms() for n in live]
            if self._queue:
                deadlines.append(self._queue[0][0])
            step = min(deadlines)
            if step > until:
                self.now = until
                return None
            self.now = max(self.now, step)
            while self._queue and self._queue[0][0] <= self.now:
                _, _, src, dest, message = heapq.heappop(self._queue)
                if dest in self.crashed or (src, dest) in self.cut:
                    continue
                self.nodes[dest].receive(message, self.now)
                self._drain(dest)
            for node_id, node in self.nodes.items():
                if node_id not in self.crashed and node.next_deadline_ms() <= self.now:
                    node.tick(self.now)
                    self._drain(node_id)
        return self.now - start

    def partition(self, *groups: list[str]) -> None:
        for group in groups:
            for other in groups:
                if other is not group:
                    self.cut |= {(a, b) for a in group for b in other}

    def heal(self) -> None:
        self.cut.clear()

    def status(self, observer: str, member: str) -> Status | None:
        record = self.nodes[observer].members.get(member)
        return None if record is None else record.status

    def sees_all_alive(self, observer: str) -> bool:
        live = [i for i in self.nodes if i not in self.crashed]
        return all(self.status(observer, m) is Status.ALIVE for m in live)

    def member_events(self, observer: str) -> list[MemberEvent]:
        return [e for e in self.nodes[observer].events_after(0) if isinstance(e, MemberEvent)]


def statuses_seen(net: Net, member: str) -> set[Status]:
    return {
        e.status
        for observer in net.nodes
        for e in net.member_events(observer)
        if e.member == member
    }


# ---- membership ------------------------------------------------------------------------


def test_join_through_a_seed_spreads_everyone_alive() -> None:
    net = Net()
    a = net.add("a")
    b = net.add("b", seeds=["a"])
    assert a.ready and not b.ready
    net.add("c", seeds=["a"])
    net.add("d", seeds=["b"])
    elapsed = net.run_until(lambda: all(net.sees_all_alive(i) for i in "abcd"), 5_000)
    assert elapsed is not None
    assert all(n.ready for n in net.nodes.values())
    first = net.member_events("a")[0]
    assert (first.seq, first.member, first.status) == (1, "a", Status.ALIVE)


def test_probe_is_acked_and_a_quiet_cluster_never_suspects() -> None:
    net = Net()
    net.cluster(["a", "b", "c", "d", "e"])
    net.run(30_000)
    kinds = {(m.kind, src, dest) for src, dest, m in net.sent}
    assert ("ping", "a", "b") in kinds and ("ack", "b", "a") in kinds
    for node_id in net.nodes:
        assert {e.status for e in net.member_events(node_id)} == {Status.ALIVE}


def test_indirect_probe_bridges_a_one_way_cut() -> None:
    net = Net()
    net.cluster(["a", "b", "c"])
    net.cut.add(("a", "c"))  # a's pings to c vanish; c -> a still works
    net.run(10_000)
    assert any(isinstance(m, PingReq) and src == "a" for src, _, m in net.sent)
    assert statuses_seen(net, "c") == {Status.ALIVE}


def test_crashed_member_is_suspected_then_dead_after_the_timeout() -> None:
    net = Net()
    ids = ["a", "b", "c", "d", "e"]
    net.cluster(ids)
    net.run(2_000)
    net.crashed.add("e")
    crashed_at = net.now
    elapsed = net.run_until(
        lambda: all(net.status(i, "e") is Status.DEAD for i in ids[:-1]), 20_000
    )
    assert elapsed is not None
    n = 5
    bound = (2 * n - 1) * 300 + suspicion_timeout_ms(4, n, 300) + 1_000
    assert elapsed <= bound
    for observer in ids[:-1]:
        events = [e for e in net.member_events(observer) if e.member == "e"]
        suspect = next(e for e in events if e.status is Status.SUSPECT)
        dead = next(e for e in events if e.status is Status.DEAD)
        assert suspect.at_ms >= crashed_at
        assert dead.at_ms > suspect.at_ms
    # The first suspecter waits the full suspicion timeout before declaring dead.
    firsts = [
        [e for e in net.member_events(o) if e.member == "e" and e.status is not Status.ALIVE]
        for o in ids[:-1]
    ]
    first_suspect = min(f[0].at_ms for f in firsts)
    first_dead = min(f[-1].at_ms for f in firsts)
    assert first_dead - first_suspect >= suspicion_timeout_ms(4, n, 300)


def test_restarted_member_rejoins_over_its_own_dead_record() -> None:
    net = Net()
    ids = ["a", "b", "c", "d"]
    net.cluster(ids)
    net.crashed.add("d")
    assert net.run_until(lambda: all(net.status(i, "d") is Status.DEAD for i in "abc"), 10_000)
    net.crashed.discard("d")
    reborn = net.add("d", seeds=["b"])  # a fresh process: incarnation 0 again
    assert net.run_until(lambda: all(net.sees_all_alive(i) for i in ids), 5_000) is not None
    assert reborn.ready and reborn.incarnation >= 1


def test_suspected_member_refutes_with_a_higher_incarnation() -> None:
    net = Net()
    net.cluster(["a", "b", "c"])
    a = net.nodes["a"]
    rumor = Gossip(
        sender="a",
        sender_addr="a:7946",
        hlc=a.clock.now(net.now),
        updates=(MemberUpdate("c", "c:7946", Status.SUSPECT, 0),),
    )
    net.nodes["b"].receive(rumor, net.now)
    net.nodes["c"].receive(rumor, net.now)
    net._drain("b")
    net._drain("c")
    assert net.nodes["c"].incarnation == 1

    def refuted_everywhere() -> bool:
        views = [n.members.get("c") for n in net.nodes.values()]
        return all(v is not None and (v.status, v.incarnation) == (Status.ALIVE, 1) for v in views)

    assert net.run_until(refuted_everywhere, 3_000) is not None
    assert Status.DEAD not in statuses_seen(net, "c")


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
    net = Net()
    ids = ["a", "b", "c", "d"]
    net.cluster(ids)
    net.nodes["d"].leave(net.now)
    net._drain("d")
    assert net.run_until(lambda: all(net.status(i, "d") is Status.LEFT for i in ids[:-1]), 3_000)
    net.run(10_000)  # long past the linger, the leaver is silent
    assert net.nodes["d"].stopped
    assert all(net.status(i, "d") is Status.LEFT for i in ids[:-1])
    assert statuses_seen(net, "d") == {Status.ALIVE, Status.LEFT}


def test_partition_longer_than_suspicion_heals_and_converges() -> None:
    net = Net()
    ids = ["a", "b", "c", "d", "e"]
    net.cluster(ids)
    net.partition(["a", "b"], ["c", "d", "e"])
    assert net.run_until(
        lambda: net.status("a", "c") is Status.DEAD and net.status("c", "a") is Status.DEAD,
        15_000,
    )
    net.run(3_000)
    net.nodes["a"].kv_put("left-side", 1, net.now)
    net.nodes["d"].kv_put("right-side", 2, net.now)
    net._drain("a")
    net._drain("d")
    net.heal()

    def converged() -> bool:
        digests = {n.kv.digest() for n in net.nodes.values()}
        return len(digests) == 1 and all(net.sees_all_alive(i) for i in ids)

    elapsed = net.run_until(converged, 20_000)
    assert elapsed is not None and elapsed <= 6_000
    assert net.nodes["e"].kv.live() == {"left-side": 1, "right-side": 2}


# ---- dissemination --------------------------------------------------------------------


def test_broadcast_reaches_all_once_and_respects_the_retransmit_limit() -> None:
    net = Net()
    ids = ["a", "b", "c", "d", "e"]
    net.cluster(ids)
    net.sent.clear()
    net.nodes["a"].broadcast("m1", {"x": 1}, net.now)
    net._drain("a")
    assert not net.nodes["a"].broadcast("m1", {"x": 1}, net.now)
    net.run(5_000)
    for node in net.nodes.values():
        assert [d.id for d in node.delivered_broadcasts()] == ["m1"]
        assert [e.id for e in node.events_after(0) if isinstance(e, BroadcastEvent)] == ["m1"]
    limit = retransmit_limit(4, len(ids))
    for node_id in ids:
        piggybacked = sum(
            1
            for src, _, m in net.sent
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
    net = Net()
    net.cluster(["a", "b", "c"])
    net.nodes["a"].kv_put("k", "v1", net.now)
    net._drain("a")
    net.run(1_000)
    assert all(n.kv_get("k") is not None for n in net.nodes.values())
    net.nodes["b"].kv_delete("k", net.now)
    net._drain("b")
    net.run(3_000)
    for node in net.nodes.values():
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
        net = Net()
        net.cluster(["a", "b", "c", "d"])
        net.run(3_000)
        return [(s, d, m.kind) for s, d, m in net.sent]

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
