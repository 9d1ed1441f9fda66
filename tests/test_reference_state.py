"""Replicated state of the reference node: dissemination modes, Merkle anti-entropy behind
the rumors, tombstones and their garbage collection, multi-value keys and CRDTs, driven
through the sans-IO core on the simulator (virtual time, every message over the wire
codec) and, for the control API, a real process."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from gossipcert.reference_node.core import Node
from gossipcert.reference_node.core.messages import (
    BroadcastUpdate,
    CrdtUpdate,
    Gossip,
    KvState,
    Merkle,
    MerkleItems,
    Pull,
)
from gossipcert.reference_node.core.vclock import decode_context, encode_context
from gossipcert.reference_node.sim import Simulation
from test_reference_core import Sent, record_sent, run_until, sees_all_alive, simulation

START_MS = 1_700_000_000_000


def cluster(ids: Sequence[str], **overrides: Any) -> Simulation:
    """`ids` joined through the first, on the wire, at a wall-clock-like virtual time."""
    sim = simulation(ids, start_ms=START_MS, **overrides)
    for node_id in ids[1:]:
        sim.join(node_id, [ids[0]])
    assert sim.run_until_true(lambda: all(sees_all_alive(sim, i) for i in ids), 15_000)
    return sim


def digests(sim: Simulation) -> set[str]:
    return {n.kv.digest() for n in sim.nodes}


def watching(done: Callable[[], bool], watch: Callable[[], None]) -> Callable[[], bool]:
    """`done`, calling `watch()` first each time it is asked."""

    def check() -> bool:
        watch()
        return done()

    return check


def kinds_sent(sent: Sent, src: str | None = None) -> dict[str, int]:
    counts: dict[str, int] = {}
    for s, _, m in sent:
        if src is None or s == src:
            counts[m.kind] = counts.get(m.kind, 0) + 1
    return counts


# ---- dissemination modes --------------------------------------------------------------


@pytest.mark.parametrize("mode", ["push", "pull", "push-pull"])
def test_each_mode_delivers_and_uses_its_own_messages(mode: str) -> None:
    ids = [f"n{i:02}" for i in range(10)]
    sim = cluster(ids, mode=mode)
    sent = record_sent(sim)
    sim.call("n03", lambda n, now: n.broadcast("rumor", {"x": 1}, now))
    took = run_until(sim, lambda: all("rumor" in n.broadcasts for n in sim.nodes), 10_000)
    assert took is not None
    kinds = kinds_sent(sent)
    if mode == "push":
        assert kinds.get("pull", 0) == 0
    else:
        assert kinds.get("pull", 0) > 0
    if mode == "pull":
        # No pushes: every gossip message answers a pull request.
        for node_id in ids:
            answered = sum(1 for _, d, m in sent if d == node_id and isinstance(m, Pull))
            assert kinds_sent(sent, node_id).get("gossip", 0) <= answered
    if mode == "push-pull":
        assert kinds.get("gossip", 0) > 0
    stats = sim.node("n03").dissemination_stats()
    assert stats["updates_sent"] > 0 and stats.get("sent:ping", 0) > 0


def test_pull_answers_only_with_what_the_requester_lacks() -> None:
    sim = cluster(["a", "b"], mode="pull")
    sim.run_for(1_000)
    sent = record_sent(sim)
    sim.call("a", lambda n, now: n.broadcast("m1", 1, now))
    run_until(sim, lambda: "m1" in sim.node("b").broadcasts, 5_000)
    sim.run_for(500)
    carried = [
        u.id
        for s, d, m in sent
        if s == "a" and isinstance(m, Gossip)
        for u in m.updates
        if isinstance(u, BroadcastUpdate)
    ]
    assert carried == ["m1"]  # once b had it, b's summaries kept a from resending it
    assert any(isinstance(m, Pull) and m.summary for s, _, m in sent if s == "b")


def test_anti_entropy_repairs_what_the_rumor_never_reached() -> None:
    sim = cluster(["a", "b", "c", "d"], retransmit_mult=1)
    sim.partition([["d"]])
    sim.call("a", lambda n, now: n.kv_put("k", "v", now))
    # The rumor dies out (retransmit limit) while d cannot hear it.
    assert run_until(sim, lambda: all(n.queue.transmits("k:k") is None for n in sim.nodes), 10_000)
    assert sim.node("d").kv_get("k") is None
    sim.heal()
    sent = record_sent(sim)
    assert run_until(sim, lambda: len(digests(sim)) == 1, 15_000) is not None
    assert sim.node("d").kv.live() == {"k": "v"}
    carriers = {
        type(m).__name__
        for _, dest, m in sent
        if dest == "d"
        and (
            any(isinstance(u, KvState) and u.key == "k" for u in m.updates)
            or (isinstance(m, Merkle) and isinstance(m.part, MerkleItems))
        )
    }
    assert carriers == {"Merkle"}


def test_merkle_sync_sends_only_the_difference() -> None:
    sim = cluster(["a", "b"], retransmit_mult=1)
    sim.call("a", lambda n, now: [n.kv_put(f"key-{i}", i, now) for i in range(300)])
    assert run_until(sim, lambda: len(digests(sim)) == 1, 20_000) is not None
    sim.partition([["b"]])
    sim.call("a", lambda n, now: n.kv_put("key-7", "changed", now))
    sim.run_for(3_000)  # the rumor retires unheard
    sim.heal()
    sent = record_sent(sim)
    assert run_until(sim, lambda: len(digests(sim)) == 1, 15_000) is not None
    shipped = [
        s.key
        for _, _, m in sent
        if isinstance(m, Merkle) and isinstance(m.part, MerkleItems)
        for s in m.part.states
        if isinstance(s, KvState)
    ]
    assert shipped and set(shipped) == {"key-7"}


# ---- tombstones -----------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["lww", "mv"])
def test_a_deleted_key_never_comes_back_after_garbage_collection(policy: str) -> None:
    gc_ms = 3_000
    sim = cluster(["a", "b", "c"], conflict_policy=policy, tombstone_gc_ms=gc_ms)
    sim.call("a", lambda n, now: n.kv_put("k", "old", now))
    assert run_until(sim, lambda: all(n.kv_get("k") for n in sim.nodes), 5_000)
    sim.partition([["c"]])  # c misses the delete and keeps the old value
    sim.call("a", lambda n, now: n.kv_delete("k", now))
    assert run_until(sim, lambda: sim.node("b").kv_get("k") is None, 5_000) is not None
    assert sim.node("b").kv.get("k") is not None  # a tombstone, not nothing
    # The tombstone outlives half the horizon, then is collected on a and b.
    sim.run_for(gc_ms // 2)
    assert sim.node("a").kv.get("k") is not None
    assert run_until(
        sim,
        lambda: sim.node("a").kv.get("k") is None and sim.node("b").kv.get("k") is None,
        gc_ms * 2,
    )
    assert sim.node("c").kv_get("k") is not None
    sim.heal()
    came_back: list[str] = []

    def watch() -> None:
        came_back.extend(i for i in ("a", "b") if sim.node(i).kv_get("k") is not None)

    converged = run_until(
        sim,
        watching(lambda: sim.node("c").kv_get("k") is None and len(digests(sim)) == 1, watch),
        20_000,
    )
    assert converged is not None and not came_back
    sim.run_for(gc_ms * 2)
    assert not came_back and all(n.kv_get("k") is None for n in sim.nodes)


# ---- multi-value keys -----------------------------------------------------------------


def test_mv_keeps_concurrent_writes_until_a_write_with_their_context() -> None:
    sim = cluster(["a", "b", "c"], conflict_policy="mv")
    sim.partition([["b"]])
    sim.call("a", lambda n, now: n.kv_put("k", "from-a", now))
    sim.call("b", lambda n, now: n.kv_put("k", "from-b", now))
    sim.run_for(500)
    sim.heal()

    def siblings_everywhere() -> bool:
        return all(n.kv.visible().get("k") == ["from-a", "from-b"] for n in sim.nodes)

    assert run_until(sim, siblings_everywhere, 15_000) is not None
    assert len(digests(sim)) == 1
    seen = sim.node("c").kv_get("k")
    assert seen is not None
    context = decode_context(encode_context(seen.context))
    sim.call("c", lambda n, now: n.kv_put("k", "merged", now, context))
    # A write without context is a sibling of everything.
    sim.call("a", lambda n, now: n.kv_put("other", 1, now))
    sim.call("b", lambda n, now: n.kv_put("other", 2, now))
    assert run_until(
        sim,
        lambda: all(n.kv.visible() == {"k": ["merged"], "other": [1, 2]} for n in sim.nodes),
        10_000,
    )
    # A delete with a context removes the siblings it saw, and only those.
    held = sim.node("a").kv_get("other")
    assert held is not None
    sim.call("b", lambda n, now: n.kv_put("other", 3, now))
    sim.call("a", lambda n, now: n.kv_delete("other", now, held.context))
    assert run_until(
        sim, lambda: all(n.kv.visible().get("other") == [3] for n in sim.nodes), 10_000
    )


# ---- CRDTs through the cluster --------------------------------------------------------


def test_crdts_replicate_and_converge() -> None:
    sim = cluster(["a", "b", "c"])
    sent = record_sent(sim)
    sim.partition([["c"]])
    for node_id in ("a", "b", "c"):
        sim.call(node_id, lambda n, now: n.crdt_apply("hits", "g-counter", "increment", 2, now))
        sim.call(node_id, lambda n, now: n.crdt_apply("net", "pn-counter", "decrement", 1, now))
    sim.call("a", lambda n, now: n.crdt_apply("tags", "or-set", "add", "x", now))
    sim.run_for(500)
    sim.call("a", lambda n, now: n.crdt_apply("tags", "or-set", "remove", "x", now))
    sim.call("c", lambda n, now: n.crdt_apply("tags", "or-set", "add", "x", now))  # concurrent
    sim.call("b", lambda n, now: n.crdt_apply("reg", "lww-register", "set", "first", now))
    sim.run_for(10)
    sim.call("c", lambda n, now: n.crdt_apply("reg", "lww-register", "set", "second", now))
    sim.heal()

    def values(node: Node) -> dict[str, Any]:
        out = {}
        for name in ("hits", "net", "tags", "reg"):
            update = node.crdt_get(name)
            out[name] = None if update is None else update.crdt.value()
        return out

    expected = {"hits": 6, "net": -3, "tags": ["x"], "reg": "second"}
    assert run_until(sim, lambda: all(values(n) == expected for n in sim.nodes), 15_000)
    assert len({n.state.tree.root for n in sim.nodes}) == 1
    rumored = any(isinstance(u, CrdtUpdate) for _, _, m in sent for u in m.updates)
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
