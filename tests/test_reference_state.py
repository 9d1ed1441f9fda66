"""Replicated state of the reference node: dissemination modes, Merkle anti-entropy behind
the rumors, tombstones and their garbage collection, multi-value keys and CRDTs, driven
through the sans-IO core (virtual time, in-memory network) and, for the control API, a
real process."""

from __future__ import annotations

import heapq
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from gossipcert.reference_node.core import Node, NodeConfig, SendMessage, Status
from gossipcert.reference_node.core.codec import decode_message, encode_message
from gossipcert.reference_node.core.messages import (
    BroadcastUpdate,
    CrdtUpdate,
    Gossip,
    KvState,
    Merkle,
    MerkleItems,
    Message,
    Pull,
)
from gossipcert.reference_node.core.vclock import decode_context, encode_context

TIMING: dict[str, Any] = {
    "probe_interval_ms": 300,
    "probe_timeout_ms": 150,
    "suspicion_mult": 4,
    "gossip_interval_ms": 100,
    "push_pull_interval_ms": 1000,
}


class Net:
    """Deterministic driver: virtual clock, 2 ms links, per-directed-link cuts, every
    message round-tripped through the JSON codec."""

    def __init__(self, **overrides: Any) -> None:
        self.now = 1_700_000_000_000
        self.timing = {**TIMING, **overrides}
        self.nodes: dict[str, Node] = {}
        self.cut: set[tuple[str, str]] = set()
        self.sent: list[tuple[str, str, Message]] = []
        self._queue: list[tuple[int, int, str, str, Message]] = []
        self._counter = 0

    def add(self, node_id: str, seeds: Iterable[str] = ()) -> Node:
        config = NodeConfig(node_id=node_id, gossip_address=f"{node_id}:1", **self.timing)
        node = self.nodes[node_id] = Node(config, self.now)
        if seeds:
            node.join([f"{s}:1" for s in seeds], self.now)
        self.drain(node_id)
        return node

    def cluster(self, ids: list[str]) -> None:
        self.add(ids[0])
        for node_id in ids[1:]:
            self.add(node_id, seeds=[ids[0]])
        assert self.run_until(lambda: all(self.sees_all_alive(i) for i in ids), 15_000)

    def drain(self, node_id: str) -> None:
        for effect in self.nodes[node_id].take_effects():
            if not isinstance(effect, SendMessage):
                continue
            dest = effect.to_id or effect.address.split(":")[0]
            message = decode_message(json.loads(json.dumps(encode_message(effect.message))))
            assert message == effect.message
            self.sent.append((node_id, dest, message))
            if dest not in self.nodes or (node_id, dest) in self.cut:
                continue
            self._counter += 1
            heapq.heappush(self._queue, (self.now + 2, self._counter, node_id, dest, message))

    def run(self, duration_ms: int) -> None:
        self.run_until(lambda: False, duration_ms)

    def run_until(
        self, done: Callable[[], bool], timeout_ms: int, always: Callable[[], None] | None = None
    ) -> int | None:
        start, until = self.now, self.now + timeout_ms
        while not done():
            if always is not None:
                always()
            deadlines = [n.next_deadline_ms() for n in self.nodes.values()]
            if self._queue:
                deadlines.append(self._queue[0][0])
            step = min(deadlines)
            if step > until:
                self.now = until
                return None
            self.now = max(self.now, step)
            while self._queue and self._queue[0][0] <= self.now:
                _, _, src, dest, message = heapq.heappop(self._queue)
                if (src, dest) not in self.cut:
                    self.nodes[dest].receive(message, self.now)
                    self.drain(dest)
            for node_id, node in self.nodes.items():
                if node.next_deadline_ms() <= self.now:
                    node.tick(self.now)
                    self.drain(node_id)
        return self.now - start

    def isolate(self, node_id: str) -> None:
        self.cut |= {(node_id, o) for o in self.nodes} | {(o, node_id) for o in self.nodes}

    def heal(self) -> None:
        self.cut.clear()

    def sees_all_alive(self, observer: str) -> bool:
        members = self.nodes[observer].members
        return all(
            (m := members.get(i)) is not None and m.status is Status.ALIVE for i in self.nodes
        )

    def act(self, node_id: str, call: Callable[[Node, int], Any]) -> Any:
        result = call(self.nodes[node_id], self.now)
        self.drain(node_id)
        return result

    def digests(self) -> set[str]:
        return {n.kv.digest() for n in self.nodes.values()}


def kinds_sent(net: Net, src: str | None = None) -> dict[str, int]:
    counts: dict[str, int] = {}
    for s, _, m in net.sent:
        if src is None or s == src:
            counts[m.kind] = counts.get(m.kind, 0) + 1
    return counts


# ---- dissemination modes --------------------------------------------------------------


@pytest.mark.parametrize("mode", ["push", "pull", "push-pull"])
def test_each_mode_delivers_and_uses_its_own_messages(mode: str) -> None:
    net = Net(mode=mode)
    ids = [f"n{i:02}" for i in range(10)]
    net.cluster(ids)
    net.sent.clear()
    net.act("n03", lambda n, now: n.broadcast("rumor", {"x": 1}, now))
    took = net.run_until(lambda: all("rumor" in n.broadcasts for n in net.nodes.values()), 10_000)
    assert took is not None
    kinds = kinds_sent(net)
    if mode == "push":
        assert kinds.get("pull", 0) == 0
    else:
        assert kinds.get("pull", 0) > 0
    if mode == "pull":
        # No pushes: every gossip message answers a pull request.
        for node_id in ids:
            answered = sum(1 for _, d, m in net.sent if d == node_id and isinstance(m, Pull))
            assert kinds_sent(net, node_id).get("gossip", 0) <= answered
    if mode == "push-pull":
        assert kinds.get("gossip", 0) > 0
    stats = net.nodes["n03"].dissemination_stats()
    assert stats["updates_sent"] > 0 and stats.get("sent:ping", 0) > 0


def test_pull_answers_only_with_what_the_requester_lacks() -> None:
    net = Net(mode="pull")
    net.cluster(["a", "b"])
    net.run(1_000)
    net.sent.clear()
    net.act("a", lambda n, now: n.broadcast("m1", 1, now))
    net.run_until(lambda: "m1" in net.nodes["b"].broadcasts, 5_000)
    net.run(500)
    carried = [
        u.id
        for s, d, m in net.sent
        if s == "a" and isinstance(m, Gossip)
        for u in m.updates
        if isinstance(u, BroadcastUpdate)
    ]
    assert carried == ["m1"]  # once b had it, b's summaries kept a from resending it
    assert any(isinstance(m, Pull) and m.summary for s, _, m in net.sent if s == "b")


def test_anti_entropy_repairs_what_the_rumor_never_reached() -> None:
    net = Net(retransmit_mult=1)
    net.cluster(["a", "b", "c", "d"])
    net.isolate("d")
    net.act("a", lambda n, now: n.kv_put("k", "v", now))
    # The rumor dies out (retransmit limit) while d cannot hear it.
    assert net.run_until(
        lambda: all(n.queue.transmits("k:k") is None for n in net.nodes.values()), 10_000
    )
    assert net.nodes["d"].kv_get("k") is None
    net.heal()
    net.sent.clear()
    assert net.run_until(lambda: len(net.digests()) == 1, 15_000) is not None
    assert net.nodes["d"].kv.live() == {"k": "v"}
    carriers = {
        type(m).__name__
        for _, dest, m in net.sent
        if dest == "d"
        and (
            any(isinstance(u, KvState) and u.key == "k" for u in m.updates)
            or (isinstance(m, Merkle) and isinstance(m.part, MerkleItems))
        )
    }
    assert carriers == {"Merkle"}


def test_merkle_sync_sends_only_the_difference() -> None:
    net = Net(retransmit_mult=1)
    net.cluster(["a", "b"])
    for i in range(300):
        net.nodes["a"].kv_put(f"key-{i}", i, net.now)
    net.drain("a")
    assert net.run_until(lambda: len(net.digests()) == 1, 20_000) is not None
    net.isolate("b")
    net.act("a", lambda n, now: n.kv_put("key-7", "changed", now))
    net.run(3_000)  # the rumor retires unheard
    net.heal()
    net.sent.clear()
    assert net.run_until(lambda: len(net.digests()) == 1, 15_000) is not None
    shipped = [
        s.key
        for _, _, m in net.sent
        if isinstance(m, Merkle) and isinstance(m.part, MerkleItems)
        for s in m.part.states
        if isinstance(s, KvState)
    ]
    assert shipped and set(shipped) == {"key-7"}


# ---- tombstones -----------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["lww", "mv"])
def test_a_deleted_key_never_comes_back_after_garbage_collection(policy: str) -> None:
    gc_ms = 3_000
    net = Net(conflict_policy=policy, tombstone_gc_ms=gc_ms)
    net.cluster(["a", "b", "c"])
    net.act("a", lambda n, now: n.kv_put("k", "old", now))
    assert net.run_until(lambda: all(n.kv_get("k") for n in net.nodes.values()), 5_000)
    net.isolate("c")  # c misses the delete and keeps the old value
    net.act("a", lambda n, now: n.kv_delete("k", now))
    assert net.run_until(lambda: net.nodes["b"].kv_get("k") is None, 5_000) is not None
    assert net.nodes["b"].kv.get("k") is not None  # a tombstone, not nothing
    # The tombstone outlives half the horizon, then is collected on a and b.
    net.run(gc_ms // 2)
    assert net.nodes["a"].kv.get("k") is not None
    assert net.run_until(
        lambda: net.nodes["a"].kv.get("k") is None and net.nodes["b"].kv.get("k") is None,
        gc_ms * 2,
    )
    assert net.nodes["c"].kv_get("k") is not None
    net.heal()
    came_back: list[str] = []

    def watch() -> None:
        came_back.extend(i for i in ("a", "b") if net.nodes[i].kv_get("k") is not None)

    converged = net.run_until(
        lambda: net.nodes["c"].kv_get("k") is None and len(net.digests()) == 1, 20_000, watch
    )
    assert converged is not None and not came_back
    net.run(gc_ms * 2)
    assert not came_back and all(n.kv_get("k") is None for n in net.nodes.values())


# ---- multi-value keys -----------------------------------------------------------------


def test_mv_keeps_concurrent_writes_until_a_write_with_their_context() -> None:
    net = Net(conflict_policy="mv")
    net.cluster(["a", "b", "c"])
    net.isolate("b")
    net.act("a", lambda n, now: n.kv_put("k", "from-a", now))
    net.act("b", lambda n, now: n.kv_put("k", "from-b", now))
    net.run(500)
    net.heal()

    def siblings_everywhere() -> bool:
        return all(n.kv.visible().get("k") == ["from-a", "from-b"] for n in net.nodes.values())

    assert net.run_until(siblings_everywhere, 15_000) is not None
    assert len(net.digests()) == 1
    seen = net.nodes["c"].kv_get("k")
    assert seen is not None
    context = decode_context(encode_context(seen.context))
    net.act("c", lambda n, now: n.kv_put("k", "merged", now, context))
    # A write without context is a sibling of everything.
    net.act("a", lambda n, now: n.kv_put("other", 1, now))
    net.act("b", lambda n, now: n.kv_put("other", 2, now))
    assert net.run_until(
        lambda: all(
            n.kv.visible() == {"k": ["merged"], "other": [1, 2]} for n in net.nodes.values()
        ),
        10_000,
    )
    # A delete with a context removes the siblings it saw, and only those.
    held = net.nodes["a"].kv_get("other")
    assert held is not None
    net.act("b", lambda n, now: n.kv_put("other", 3, now))
    net.act("a", lambda n, now: n.kv_delete("other", now, held.context))
    assert net.run_until(
        lambda: all(n.kv.visible().get("other") == [3] for n in net.nodes.values()), 10_000
    )


# ---- CRDTs through the cluster --------------------------------------------------------


def test_crdts_replicate_and_converge() -> None:
    net = Net()
    net.cluster(["a", "b", "c"])
    net.isolate("c")
    for node_id in ("a", "b", "c"):
        net.act(node_id, lambda n, now: n.crdt_apply("hits", "g-counter", "increment", 2, now))
        net.act(node_id, lambda n, now: n.crdt_apply("net", "pn-counter", "decrement", 1, now))
    net.act("a", lambda n, now: n.crdt_apply("tags", "or-set", "add", "x", now))
    net.run(500)
    net.act("a", lambda n, now: n.crdt_apply("tags", "or-set", "remove", "x", now))
    net.act("c", lambda n, now: n.crdt_apply("tags", "or-set", "add", "x", now))  # concurrent
    net.act("b", lambda n, now: n.crdt_apply("reg", "lww-register", "set", "first", now))
    net.run(10)
    net.act("c", lambda n, now: n.crdt_apply("reg", "lww-register", "set", "second", now))
    net.heal()

    def values(node: Node) -> dict[str, Any]:
        out = {}
        for name in ("hits", "net", "tags", "reg"):
            update = node.crdt_get(name)
            out[name] = None if update is None else update.crdt.value()
        return out

    expected = {"hits": 6, "net": -3, "tags": ["x"], "reg": "second"}
    assert net.run_until(lambda: all(values(n) == expected for n in net.nodes.values()), 15_000)
    assert len({n.state.tree.root for n in net.nodes.values()}) == 1
    rumored = any(isinstance(u, CrdtUpdate) for _, _, m in net.sent for u in m.updates)
    assert rumored


# ---- the control API, on a real process -----------------------------------------------


def _free(host: str) -> str:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return f"{host}:{sock.getsockname()[1]}"


def _http(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def mv_node() -> Iterator[str]:
    control = _free("127.0.0.6")
    command = [sys.executable, "-m", "reference_node", "--id", "mv", "--gossip",
               _free("127.0.0.6"), "--control", control, "--conflict-policy", "mv"]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://{control}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if _http("GET", base + "/v1/node")[1].get("ready"):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "node did not come up"
            time.sleep(0.05)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_control_api_mv_and_crdt_shapes(mv_node: str) -> None:
    base = mv_node
    assert "crdt" in _http("GET", base + "/v1/node")[1]["capabilities"]
    status, first = _http("PUT", base + "/v1/kv/k", {"value": "b"})
    assert status == 200 and isinstance(first["context"], str) and len(first["timestamp"]) == 2
    assert _http("PUT", base + "/v1/kv/k", {"value": "a"})[0] == 200  # no context: sibling
    status, got = _http("GET", base + "/v1/kv/k")
    assert status == 200 and got["key"] == "k" and got["values"] == ["a", "b"]
    assert _http("PUT", base + "/v1/kv/k", {"value": "c", "context": got["context"]})[0] == 200
    assert _http("GET", base + "/v1/kv/k")[1]["values"] == ["c"]
    listing = _http("GET", base + "/v1/kv")[1]
    assert listing["entries"] == {"k": {"values": ["c"]}} and listing["digest"]
    status, error = _http("PUT", base + "/v1/kv/k", {"value": 1, "context": "%%%"})
    assert status == 400 and error["error"] == "bad_context"
    current = _http("GET", base + "/v1/kv/k")[1]["context"]
    assert _http("DELETE", base + "/v1/kv/k", {"context": current})[0] == 200
    assert _http("GET", base + "/v1/kv/k")[0] == 404

    assert _http("GET", base + "/v1/crdt/tags")[0] == 404
    for value in ("b", "a", "b"):
        body = {"type": "or-set", "op": "add", "value": value}
        assert _http("POST", base + "/v1/crdt/tags", body)[0] == 200
    assert _http("GET", base + "/v1/crdt/tags")[1] == {"type": "or-set", "value": ["a", "b"]}
    status, error = _http("POST", base + "/v1/crdt/tags", {"type": "g-counter", "op": "increment"})
    assert status == 400 and set(error) == {"error", "message"}
    status, error = _http("POST", base + "/v1/crdt/c", {"type": "g-counter", "op": "decrement"})
    assert status == 400
    assert _http("POST", base + "/v1/crdt/c", {"type": "g-counter", "op": "jump"})[0] == 400
    assert _http("POST", base + "/v1/crdt/c", {"type": "nope", "op": "increment"})[0] == 400
    assert (
        _http("POST", base + "/v1/crdt/c", {"type": "pn-counter", "op": "decrement", "value": 4})[0]
        == 200
    )
    assert _http("GET", base + "/v1/crdt/c")[1] == {"type": "pn-counter", "value": -4}
    register: dict[str, Any] = {"type": "lww-register", "op": "set", "value": {"x": 1}}
    assert _http("POST", base + "/v1/crdt/r", register)[0] == 200
    assert _http("GET", base + "/v1/crdt/r")[1] == {"type": "lww-register", "value": {"x": 1}}
    metrics = _http("GET", base + "/v1/metrics")[1]
    assert metrics["state"]["crdts"] == 3 and "dissemination" in metrics
