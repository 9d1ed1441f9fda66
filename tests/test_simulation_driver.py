"""The simulator as a driver of clusters: nodes named and configured one by one, the control
API answered by the function the real node serves, processes paused, restarted with their
data dir, added and removed, per-link faults and counters, the wire with keyrings.
Everything runs on virtual time."""

from __future__ import annotations

import ast
import base64
import pathlib
import subprocess
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import jsonschema
import pytest
import yaml
from gossipcert.reference_node import api
from gossipcert.reference_node.core import Status
from gossipcert.reference_node.core.events import Event, MemberEvent
from gossipcert.reference_node.durable import COMPACT_EVERY
from gossipcert.reference_node.sim import Simulation
from gossipcert.reference_node.sim.simulation import RECONNECT_BACKOFF_MS, TIMEOUT, UNREACHABLE
from gossipcert.specs import spec_path
from simulated_runs import reference_timing
from test_reference_runtime import Proc, http, spawn, stop, wait_for

TIMING = reference_timing()  # the reference manifest's, as the harness runs the node
START_MS = 1_700_000_000_000
KEY = base64.b64encode(bytes(range(16))).decode()
OTHER_KEY = base64.b64encode(bytes(range(100, 116))).decode()
NEW_KEY = base64.b64encode(bytes(range(200, 232))).decode()


def cluster(ids: Sequence[str] = ("a", "b", "c", "d"), seed: int = 1, **options: Any) -> Simulation:
    """Nodes started as the harness starts processes: the first alone, the others with
    it as their seed; returns once everyone sees everyone alive."""
    sim = Simulation(
        ids=list(ids),
        config={**TIMING, **options.pop("config", {})},
        seed=seed,
        latency_ms=2,
        start=False,
        start_ms=START_MS,
        **options,
    )
    for node_id in ids:
        sim.start_node(node_id, seeds=[] if node_id == ids[0] else [ids[0]])
    assert sim.run_until_true(lambda: everyone_alive(sim, ids), 10_000)
    return sim


def everyone_alive(sim: Simulation, ids: Sequence[str]) -> bool:
    return all(sim.status_seen(o, m) is Status.ALIVE for o in ids for m in ids)


def ok(sim: Simulation, node_id: str, method: str, path: str, body: Any = None) -> Any:
    status, reply = sim.request(node_id, method, path, body)
    assert 200 <= status < 300, (status, reply)
    return reply


def listed(sim: Simulation, observer: str) -> dict[str, str]:
    members = ok(sim, observer, "GET", "/v1/members")["members"]
    return {m["id"]: m["status"] for m in members}


# ---- nodes by name, each with its own configuration --------------------------------------


def test_explicit_ids_and_per_node_config() -> None:
    sim = Simulation(
        ids=["x", "y", "z"], config=TIMING, node_config={"z": {"conflict_policy": "mv"}}
    )
    assert sim.ids == ["x", "y", "z"] and sim.address("y") == sim.addresses[1]
    assert sim.node("x").config.probe_interval_ms == 300
    assert (sim.node("x").config.conflict_policy, sim.node("z").config.conflict_policy) == (
        "lww",
        "mv",
    )
    for node_id in ("x", "z"):
        ok(sim, node_id, "PUT", "/v1/kv/k", {"value": 1})
        ok(sim, node_id, "PUT", "/v1/kv/k", {"value": 2})  # no context: a sibling under mv
    assert ok(sim, "x", "GET", "/v1/kv/k")["values"] == [2]
    assert ok(sim, "z", "GET", "/v1/kv/k")["values"] == [1, 2]
    with pytest.raises(ValueError, match="unknown ids: w"):
        Simulation(ids=["x"], node_config={"w": {}})
    with pytest.raises(ValueError, match="unique"):
        Simulation(ids=["x", "x"])
    with pytest.raises(ValueError, match="n is 3 but 2 ids"):
        Simulation(3, ids=["x", "y"])
    with pytest.raises(ValueError, match="unknown NodeConfig fields: nope"):
        Simulation(ids=["x"], node_config={"x": {"nope": 1}})


def test_requests_to_nodes_that_do_not_run_are_refused_or_time_out() -> None:
    sim = Simulation(ids=["a", "b", "c", "d"], config=TIMING, start=False, start_ms=START_MS)
    assert sim.request("a", "GET", "/v1/node") == (
        0,
        {"error": UNREACHABLE, "message": "a is not running: connection refused"},
    )
    for node_id in "abcd":
        sim.start_node(node_id)
    assert ok(sim, "a", "GET", "/v1/node")["id"] == "a"
    sim.crash("a")
    sim.pause("b")
    sim.remove_node("c")
    before = sim.now_ms
    assert sim.request("a", "PUT", "/v1/kv/k", {"value": 1})[1]["error"] == UNREACHABLE
    assert sim.request("b", "GET", "/v1/members")[1]["error"] == TIMEOUT
    status, body = sim.request("c", "GET", "/v1/node")
    assert status == 0 and body["error"] == UNREACHABLE and "removed" in body["message"]
    assert sim.now_ms == before  # no virtual time passes for an unanswered call
    with pytest.raises(ValueError, match="removed"):
        sim.restart("c")
    sim.resume("b")
    assert ok(sim, "b", "GET", "/v1/node")["ready"]
    assert sim.node("a").kv_get("k") is None  # the refused write never happened


def test_a_join_through_the_api_waits_in_virtual_time() -> None:
    sim = Simulation(ids=["a", "b", "c"], config=TIMING, start=False, start_ms=START_MS)
    for node_id in "abc":
        sim.start_node(node_id)
    status, body = sim.request("b", "POST", "/v1/join", {"seeds": "a"})
    assert status == 400 and body["error"] == "bad_request"
    before = sim.now_ms
    assert sim.request("b", "POST", "/v1/join", {"seeds": [sim.address("a")]}) == (
        200,
        {"joined": True},
    )
    assert 0 < sim.now_ms - before < 1_000 and sim.node("b").ready
    # Nobody answers: the call gives up after the contract's wait, as the real one does.
    before = sim.now_ms
    status, body = sim.request("c", "POST", "/v1/join", {"seeds": ["nowhere.sim:1"]})
    assert (status, body["error"]) == (503, "join_timeout")
    assert sim.now_ms - before == api.JOIN_WAIT_MS and not sim.node("c").ready


# ---- process faults --------------------------------------------------------------------


def test_a_paused_node_is_declared_dead_meanwhile_and_refutes_after_resume() -> None:
    ids = ("a", "b", "c", "d", "e")
    sim = cluster(ids)
    sim.run_for(1_000)
    e = sim.index["e"]
    incarnation = sim.node("e").incarnation
    events_before = len(sim.node("e").events_after(0))
    received_before = sim.metrics[e].messages_received
    sim.pause("e")
    paused_at = sim.now_ms
    assert sim.run_until_true(lambda: sim.all_see("e", Status.DEAD), 30_000)
    assert sim.now_ms - paused_at > 1_000
    assert sim.request("e", "GET", "/v1/node")[1]["error"] == TIMEOUT
    # Frozen: no timer ran, nothing was read; what was sent to it waits.
    assert sim.metrics[e].messages_received == received_before
    assert len(sim.node("e").events_after(0)) == events_before
    assert all(sim.status_seen("e", m) is Status.ALIVE for m in ids)
    waiting = len(sim._held[e])
    assert waiting > 0
    sim.resume("e")
    # Everything that waited is read at once, at resume, before any timer fires.
    assert sim.metrics[e].messages_received == received_before + waiting
    assert sim.node("e").incarnation > incarnation  # it read its own death and refuted
    assert sim.run_until_true(lambda: sim.all_see("e", Status.ALIVE), 10_000)
    assert all(listed(sim, o)["e"] == "alive" for o in ids)


def test_a_restart_after_acknowledged_writes_still_holds_them() -> None:
    sim = cluster(("a", "b", "c"))
    for i in range(10):
        ok(sim, "c", "PUT", f"/v1/kv/c-{i}", {"value": i})
    ok(sim, "c", "DELETE", "/v1/kv/c-0")
    sim.crash("c")  # the same instant: nothing has left c yet, only its data dir has them
    assert sim.node("a").kv_get("c-1") is None
    assert sim.run_until_true(lambda: sim.all_see("c", Status.DEAD), 20_000)
    dead = sim.node("a").members.get("c")
    assert dead is not None
    sim.restart("c")  # joins through its launch seed, as a restarted process does
    entries = ok(sim, "c", "GET", "/v1/kv")["entries"]
    assert {k: v["values"] for k, v in entries.items()} == {f"c-{i}": [i] for i in range(1, 10)}
    assert sim.node("c").incarnation > dead.incarnation
    assert sim.run_until_true(lambda: sim.all_see("c", Status.ALIVE), 10_000)
    assert sim.run_until_true(lambda: len(sim.node("a").kv) == 10, 10_000)
    # Without a data dir, a node restarted the same way has nothing.
    ok(sim, "b", "PUT", "/v1/kv/b-only", {"value": 1})
    sim.restart("b", data_dir=False)
    assert sim.request("b", "GET", "/v1/kv/b-only")[0] == 404


def test_a_restart_reads_the_snapshot_and_the_log_since() -> None:
    sim = Simulation(ids=["solo"], config=TIMING, start_ms=START_MS)
    for i in range(COMPACT_EVERY + 5):
        ok(sim, "solo", "PUT", f"/v1/kv/k{i}", {"value": i})
    stored = sim.data_dirs[0]
    assert stored.snapshot is not None and len(stored.log) == 5
    sim.run_for(100)
    old = sim.node("solo").incarnation
    sim.restart("solo")
    assert len(ok(sim, "solo", "GET", "/v1/kv")["entries"]) == COMPACT_EVERY + 5
    assert sim.node("solo").incarnation == old + 1
    assert ok(sim, "solo", "GET", "/v1/events")["events"][0]["seq"] == 1  # a new life


# ---- per-link faults and counters --------------------------------------------------------


def test_loss_on_one_link_changes_only_that_links_counters() -> None:
    sim = cluster(count_links=True)
    before = sim.link_counters()
    sim.set_link_loss("a", "b", 0.5)
    sim.run_for(5_000)
    after = sim.link_counters()
    lost = {link: after[link].lost - before.get(link, type(after[link])()).lost for link in after}
    assert lost[("a", "b")] > 0
    assert all(n == 0 for link, n in lost.items() if link != ("a", "b"))
    assert all(c.cut == 0 and c.down == 0 for c in after.values())
    ab = after[("a", "b")]
    assert ab.delivered + ab.lost == ab.messages
    sim.heal()  # clears link faults too
    sim.run_for(3_000)
    assert sim.link_counters()[("a", "b")].lost == ab.lost
    assert sim.link_counts() == {link: c.messages for link, c in sim.link_counters().items()}
    assert sim.run_until_true(lambda: everyone_alive(sim, "abcd"), 10_000)


def test_latency_on_one_link_delays_only_that_direction() -> None:
    sim = cluster(("a", "b"))
    delivered: dict[tuple[str, str], int] = {}

    def on_event(at_ms: int, observer: str, event: Event) -> None:
        if event.kind == "broadcast":
            delivered[(getattr(event, "id", ""), observer)] = at_ms

    sim.on_event(on_event)
    sim.set_link_latency("a", "b", 400, 50)

    def spread(origin: str, other: str, broadcast_id: str) -> int:
        sim.broadcast(origin, broadcast_id)
        assert sim.run_until_delivered(broadcast_id, 5_000)
        return delivered[(broadcast_id, other)] - delivered[(broadcast_id, origin)]

    assert 350 <= spread("a", "b", "slow") <= 350 + 100 + 2 * 450
    assert spread("b", "a", "fast") < 300
    sim.heal()
    assert spread("a", "b", "healed") < 300


def test_a_partition_counts_on_the_cut_links() -> None:
    sim = cluster(count_links=True)
    sim.partition([["a", "b"], ["c", "d"]])
    sim.run_for(2_000)
    counters = sim.link_counters()
    assert counters[("a", "c")].cut > 0 and counters[("d", "b")].cut > 0
    assert counters[("a", "b")].cut == 0 and counters[("c", "d")].cut == 0
    with pytest.raises(ValueError, match="count_links"):
        cluster(("x", "y")).link_counts()


# ---- the wire: codec, keyrings, intruders ------------------------------------------------


def test_an_intruder_with_the_wrong_key_is_never_listed_alive() -> None:
    ids = ("a", "b", "c")
    sim = cluster(ids, gossip_key=KEY)
    about_intruder: list[tuple[str, Event]] = []

    def on_event(at_ms: int, observer: str, event: Event) -> None:
        if isinstance(event, MemberEvent) and event.member == "intruder":
            about_intruder.append((observer, event))

    sim.on_event(on_event)
    sim.add_node("intruder", gossip_key=OTHER_KEY, seeds=["a"])
    sim.run_for(10_000)
    assert not [e for observer, e in about_intruder if observer != "intruder"]
    for observer in ids:
        assert "intruder" not in listed(sim, observer)
    assert ok(sim, "intruder", "GET", "/v1/node")["ready"] is False
    assert set(listed(sim, "intruder")) == {"intruder"}
    assert ok(sim, "a", "GET", "/v1/metrics")["dropped"]["decrypt_failed"] > 0
    assert sim.dropped["rejected"] > 0
    sim.remove_node("intruder")
    assert sim.request("intruder", "GET", "/v1/node")[1]["error"] == UNREACHABLE
    with pytest.raises(ValueError, match="already in use"):
        sim.add_node("intruder")

    # The same node with the cluster's key gets in: the check above can fail.
    sim.add_node("friend", gossip_key=KEY, seeds=["a"])
    assert sim.run_until_true(lambda: sim.all_see("friend", Status.ALIVE), 10_000)
    assert listed(sim, "b")["friend"] == "alive"


def test_a_key_rotation_through_the_api_loses_no_frame() -> None:
    ids = ("a", "b", "c")
    sim = cluster(ids, gossip_key=KEY)
    for op, key in (("install", NEW_KEY), ("use", NEW_KEY), ("remove", KEY)):
        for node_id in ids:
            view = ok(sim, node_id, "POST", "/v1/keyring", {"op": op, "key": key})
            sim.run_for(50)
        assert view["enabled"] and view["keys"][0] == (NEW_KEY if op != "install" else KEY)
    sim.run_for(3_000)
    assert ok(sim, "c", "GET", "/v1/keyring")["keys"] == [NEW_KEY]
    assert sim.dropped["rejected"] == 0
    assert everyone_alive(sim, ids)
    status, body = sim.request("a", "POST", "/v1/keyring", {"op": "remove", "key": NEW_KEY})
    assert (status, body["error"]) == (409, "primary_key")
    # A key only one node uses: the others cannot open its frames and count them.
    ok(sim, "a", "POST", "/v1/keyring", {"op": "install", "key": OTHER_KEY})
    ok(sim, "a", "POST", "/v1/keyring", {"op": "use", "key": OTHER_KEY})
    sim.run_for(1_000)
    assert ok(sim, "b", "GET", "/v1/metrics")["dropped"]["decrypt_failed"] > 0


def test_wire_metrics_count_what_the_links_carry() -> None:
    ids = ("a", "b", "c", "d")
    sim = cluster(ids, gossip_key=KEY, count_links=True)
    ok(sim, "a", "POST", "/v1/broadcast", {"id": "m1", "payload": {"x": 1}})
    sim.run_for(2_000)
    links = sim.link_counters()
    for node_id in ids:
        metrics = ok(sim, node_id, "GET", "/v1/metrics")
        sent = sum(c.messages for (src, _), c in links.items() if src == node_id)
        sent_bytes = sum(c.bytes for (src, _), c in links.items() if src == node_id)
        received = sum(c.delivered for (_, dst), c in links.items() if dst == node_id)
        assert metrics["messages_sent"] == sent > 0
        assert metrics["bytes_sent"] == sent_bytes > 40 * sent  # sealed frames
        assert metrics["messages_received"] == received
        by_direction = metrics["by_direction"]["sent"]
        assert sum(row["messages"] for row in by_direction.values()) == sent
        assert metrics["rounds"]["probe"] > 0 and metrics["queues"]["outbound_links"] == 3
        assert metrics["state"]["keys"] == 0 and "sent:gossip" in metrics["dissemination"]
    # A node that is gone refuses connections, as a dead process does.
    sim.crash("d")
    sim.run_for(2_000)
    metrics = ok(sim, "a", "GET", "/v1/metrics")
    assert metrics["connect_failures"] > 0 and metrics["dropped"]["connect_failed"] > 0
    assert RECONNECT_BACKOFF_MS == 100


def test_one_seed_gives_one_run_on_the_wire() -> None:
    def run(seed: int) -> list[Any]:
        sim = cluster(("a", "b", "c"), seed=seed, gossip_key=KEY, trace=True)
        sim.pause("c")
        sim.run_for(2_000)
        sim.resume("c")
        sim.run_for(1_000)
        assert sim.trace is not None
        return sim.trace

    assert run(3) == run(3)
    assert run(3) != run(4)


# ---- events reach the hooks ----------------------------------------------------------------


def test_every_event_reaches_the_hooks_at_its_virtual_time() -> None:
    seen: dict[str, list[tuple[int, Event]]] = {}
    sim = Simulation(ids=["a", "b", "c", "d"], config=TIMING, start=False, start_ms=START_MS)
    sim.on_event(lambda at_ms, node_id, event: seen.setdefault(node_id, []).append((at_ms, event)))
    for node_id in "abcd":
        sim.start_node(node_id, seeds=[] if node_id == "a" else ["a"])
    sim.run_for(3_000)
    ok(sim, "b", "POST", "/v1/broadcast", {"id": "m", "payload": 1})
    sim.crash("d")
    sim.run_for(10_000)
    ok(sim, "a", "POST", "/v1/leave")
    sim.run_for(3_000)
    for node_id in "abcd":
        logged = sim.node(node_id).events_after(0)
        assert [e for _, e in seen[node_id]] == logged
        assert all(at == e.at_ms for at, e in seen[node_id])
    kinds = {(e.kind, getattr(e, "status", None)) for _, e in seen["b"]}
    assert {("broadcast", None), ("member", Status.DEAD), ("member", Status.LEFT)} <= kinds


# ---- the contract: the shapes the OpenAPI document gives, as a real node answers -----------


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    with spec_path("control-api.yaml").open(encoding="utf-8") as f:
        data: dict[str, Any] = yaml.safe_load(f)
    return data


def _inline(doc: dict[str, Any], node: Any) -> Any:
    """The schema with every `#/...` reference replaced by what it points at."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            target: Any = doc
            for part in ref[2:].split("/"):
                target = target[part]
            return _inline(doc, target)
        return {k: _inline(doc, v) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(doc, v) for v in node]
    return node


def _template(path: str) -> str:
    path = path.partition("?")[0]
    for prefix, template in (("/v1/kv/", "/v1/kv/{key}"), ("/v1/crdt/", "/v1/crdt/{name}")):
        if path.startswith(prefix):
            return template
    return path


def check_against_openapi(
    doc: dict[str, Any], method: str, path: str, status: int, body: Any
) -> None:
    responses = doc["paths"][_template(path)][method.lower()]["responses"]
    response = _inline(doc, responses.get(str(status), responses["default"]))
    schema = response["content"]["application/json"]["schema"]
    jsonschema.Draft202012Validator(schema).validate(body)


# Every path of the contract, successes and errors, in an order that makes each answer
# deterministic in shape on a lone node.
CALLS: list[tuple[str, str, Any]] = [
    ("GET", "/v1/node", None),
    ("GET", "/v1/members", None),
    ("PUT", "/v1/kv/a%2Fb", {"value": {"n": 1}}),
    ("PUT", "/v1/kv/a%2Fb", {"value": 2}),
    ("GET", "/v1/kv/a%2Fb", None),
    ("PUT", "/v1/kv/k", {"value": 1, "context": "%%%"}),
    ("PUT", "/v1/kv/k", {"nope": 1}),
    ("GET", "/v1/kv", None),
    ("DELETE", "/v1/kv/a%2Fb", {}),
    ("GET", "/v1/kv/a%2Fb", None),
    ("POST", "/v1/crdt/c1", {"type": "pn-counter", "op": "decrement", "value": 3}),
    ("POST", "/v1/crdt/c1", {"type": "g-counter", "op": "jump"}),
    ("POST", "/v1/crdt/tags", {"type": "or-set", "op": "add", "value": "x"}),
    ("GET", "/v1/crdt/c1", None),
    ("GET", "/v1/crdt/tags", None),
    ("GET", "/v1/crdt/none", None),
    ("POST", "/v1/broadcast", {"id": "b1", "payload": [1, 2]}),
    ("POST", "/v1/broadcast", {"payload": 1}),
    ("GET", "/v1/broadcasts", None),
    ("GET", "/v1/events?after=0", None),
    ("GET", "/v1/events?after=x", None),
    ("GET", "/v1/metrics", None),
    ("GET", "/v1/keyring", None),
    ("POST", "/v1/keyring", {"op": "install", "key": KEY}),
    ("POST", "/v1/join", {"seeds": ["no-port"]}),
    ("GET", "/v1/nowhere", None),
    ("POST", "/v1/node", None),
    ("POST", "/v1/leave", {}),
    ("GET", "/v1/members", None),
]


def shape(value: Any) -> Any:
    """What a client can rely on: keys and JSON types, not values."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


def test_a_simulated_cluster_answers_the_openapi_schemas(openapi: dict[str, Any]) -> None:
    sim = cluster(("a", "b", "c"), config={"conflict_policy": "mv"})
    checked = set()
    for method, path, body in CALLS:
        status, reply = sim.request("b", method, path, body)
        assert status != 0
        if method.lower() in openapi["paths"].get(_template(path), {}):
            check_against_openapi(openapi, method, path, status, reply)
            checked.add((_template(path), method))
        else:  # no such operation
            assert status in (404, 405) and set(reply) == {"error", "message"}
        sim.run_for(10)
    design = {
        (path, method.upper())
        for path, item in openapi["paths"].items()
        for method in item
        if method in ("get", "put", "post", "delete")
    }
    assert checked == design  # every operation of the contract was exercised


@pytest.fixture
def real_node() -> Iterator[Proc]:
    proc = spawn("solo", "127.0.0.41", "--conflict-policy", "mv")
    try:
        wait_for(lambda: proc.get("/v1/node")["ready"], 10)
        yield proc
    finally:
        stop([proc])


def test_a_simulated_node_answers_as_a_real_one(real_node: Proc) -> None:
    sim = Simulation(ids=["solo"], config={**TIMING, "conflict_policy": "mv"}, start_ms=START_MS)
    for method, path, body in CALLS:
        real = http(method, real_node.url(path), body)
        simulated = sim.request("solo", method, path, body)
        assert simulated[0] == real[0], (method, path, real, simulated)
        assert shape(simulated[1]) == shape(real[1]), (method, path, real, simulated)
        if isinstance(real[1], dict) and "error" in real[1]:
            message = real[1]["message"].replace(real_node.gossip, sim.address("solo"))
            assert simulated[1] == {**real[1], "message": message}, (method, path)


# ---- the simulator stays sans-IO ---------------------------------------------------------


FORBIDDEN = {"socket", "asyncio", "time", "threading", "selectors", "subprocess", "os", "fcntl"}


def test_the_simulator_and_the_api_import_no_io_clock_or_thread_module() -> None:
    import gossipcert.reference_node as package

    root = pathlib.Path(package.__file__).parent
    sources = [*sorted((root / "sim").glob("*.py")), root / "api.py", root / "durable.py"]
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                roots = {(node.module or "").split(".")[0]}
            else:
                continue
            assert not roots & FORBIDDEN, f"{path.name} imports {roots & FORBIDDEN}"
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, gossipcert.reference_node.sim, "
         "gossipcert.reference_node.api; print(' '.join(sorted(sys.modules)))"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert not {"asyncio", "socket", "aiohttp", "selectors", "fcntl"} & set(loaded)
