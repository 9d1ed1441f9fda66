"""Maelstrom nodes under gossipcert: the bridge (message mapping, seq-kv, bad input), the
manifest's ``maelstrom:`` form, integer broadcast ids, CRDT types claimed one by one, and
(slow) certification of the sample nodes in tests/maelstrom_nodes on real processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gossipcert.adapters.maelstrom.bridge import (
    DEFINITE,
    ID_LIMIT,
    ContractError,
    SeqKV,
    error_status,
    full_topology,
    kv_host,
    parse_message_id,
)
from gossipcert.chaos.runlabels import run_label_pid
from gossipcert.harness.drivers.sweep import orphaned_processes
from gossipcert.harness.errors import ManifestError
from gossipcert.harness.history import History, build
from gossipcert.harness.judging.bounds import derived_parameters
from gossipcert.harness.judging.verdict import load_catalogue
from gossipcert.harness.manifest import load_manifest, maelstrom_impl
from gossipcert.harness.run.suite import suite_plan
from gossipcert.harness.workloads import operations as o
from gossipcert.harness.workloads.broadcast import Broadcast
from gossipcert.harness.workloads.capabilities import run_checks
from gossipcert.harness.workloads.crdt import Crdt
from gossipcert.harness.workloads.faults import Cut
from gossipcert.harness.workloads.interpreter import Execution
from gossipcert.harness.workloads.planner import plan

NODES = Path(__file__).resolve().parent / "maelstrom_nodes"
GOSSIP, NORETRY, COUNTER = (str(NODES / f"{n}.py") for n in
                            ("broadcast_gossip", "broadcast_noretry", "g_counter"))
CATALOGUE = load_catalogue()


# ---------------------------------------------------------------- the bridge, pure parts


def test_broadcast_ids_must_be_decimal_integers_below_2_31() -> None:
    assert parse_message_id("0") == 0
    assert parse_message_id(str(ID_LIMIT - 1)) == ID_LIMIT - 1
    for bad in ("bcast-3-0", "-1", "1.5", "", " 7", str(ID_LIMIT), 7, None, "٣"):
        with pytest.raises(ContractError) as caught:
            parse_message_id(bad)
        assert caught.value.status == 400


def test_seq_kv_read_write_and_cas_with_maelstrom_error_codes() -> None:
    kv = SeqKV()
    missing = kv.handle({"type": "read", "key": "a", "msg_id": 7})
    assert missing["type"] == "error" and missing["code"] == 20 and missing["in_reply_to"] == 7
    assert kv.handle({"type": "cas", "key": "a", "from": 0, "to": 1})["code"] == 20
    assert kv.handle({"type": "cas", "key": "a", "from": 0, "to": 1,
                      "create_if_not_exists": True})["type"] == "cas_ok"
    assert kv.handle({"type": "read", "key": "a"}) | {"msg_id": 0} == {
        "type": "read_ok", "value": 1, "msg_id": 0}
    stale = kv.handle({"type": "cas", "key": "a", "from": 0, "to": 5})
    assert stale["type"] == "error" and stale["code"] == 22
    assert kv.handle({"type": "cas", "key": "a", "from": 1, "to": 5})["type"] == "cas_ok"
    assert kv.handle({"type": "write", "key": ["k", 1], "value": {"x": 1}})["type"] == "write_ok"
    assert kv.handle({"type": "read", "key": ["k", 1]})["value"] == {"x": 1}
    assert kv.handle({"type": "read", "key": "k"})["code"] == 20  # another key than ["k", 1]
    assert kv.handle({"type": "txn", "txn": []})["code"] == 10
    assert kv.handle({"type": "read"})["code"] == 12


def test_topology_kv_host_and_error_mapping() -> None:
    ids = ["n2", "n10", "n1"]
    assert kv_host(ids) == "n1"
    topology = full_topology(sorted(ids))
    assert topology["n1"] == ["n10", "n2"] and all(len(v) == 2 for v in topology.values())
    assert error_status(20) == 404 and error_status(22) == 409 and error_status(11) == 503
    assert 0 not in DEFINITE and 13 not in DEFINITE and 22 in DEFINITE


# ---------------------------------------------------------------- manifests and the harness


def test_maelstrom_manifest_per_workload() -> None:
    broadcast = load_manifest(f"maelstrom:{GOSSIP}")
    assert broadcast.capabilities == ["broadcast", "metrics"]
    assert broadcast.broadcast_ids == "integer" and broadcast.accepts_dial_map
    assert broadcast.name == "maelstrom-broadcast-broadcast_gossip"
    assert broadcast.process is not None
    assert broadcast.process.command[-4:] == ["--workload", "broadcast", "--node", GOSSIP]
    counter = load_manifest(maelstrom_impl(f"maelstrom:{COUNTER}", "g-counter"))
    assert counter.capabilities == ["crdt", "metrics", "crdt:g-counter"]
    assert counter.crdt_types == ("g-counter",) and counter.broadcast_ids == "any"
    assert load_manifest("reference").broadcast_ids == "any"


def test_bad_maelstrom_implementations_are_manifest_errors(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no such file"):
        load_manifest(f"maelstrom:{tmp_path / 'nope'}")
    plain = tmp_path / "node.py"
    plain.write_text("print()\n")
    with pytest.raises(ManifestError, match="not an executable file"):
        load_manifest(f"maelstrom:{plain}")
    with pytest.raises(ManifestError, match="unknown Maelstrom workload 'echo'"):
        maelstrom_impl(f"maelstrom:{GOSSIP}", "echo")
    with pytest.raises(ManifestError, match="--workload applies"):
        maelstrom_impl("reference", "broadcast")


def test_crdt_types_need_the_crdt_capability(tmp_path: Path) -> None:
    text = Path(load_manifest("reference").path).read_text()
    bad = tmp_path / "manifest.yaml"
    bad.write_text(text.replace("[membership, failure-detection, broadcast, kv, crdt,",
                                "[membership, failure-detection, broadcast, kv,")
                   + "crdt_types: [g-counter]\n")
    with pytest.raises(ManifestError, match="crdt_types without the crdt capability"):
        load_manifest(str(bad))


class _Driver:
    """Just enough of a cluster for an Execution that runs nothing."""

    def __init__(self, capabilities: list[str], broadcast_ids: str, tmp: Path) -> None:
        self.capabilities = capabilities
        self.broadcast_ids = broadcast_ids
        self.node_ids = ["n1", "n2", "n3"]
        self.history = History(tmp / "history.jsonl")

    def clock(self) -> float:
        return time.monotonic()


def _execution(tmp: Path, capabilities: list[str], ids: str = "any") -> Execution:
    timing = load_manifest("reference").timing
    return Execution(_Driver(capabilities, ids, tmp), CATALOGUE, timing)  # type: ignore[arg-type]


def test_integer_broadcast_ids_are_one_deterministic_translation(tmp_path: Path) -> None:
    x = _execution(tmp_path, ["broadcast"], "integer")
    wire = x.broadcast_id("bcast-3-0")
    assert wire.isdigit() and int(wire) < ID_LIMIT
    assert x.broadcast_id("bcast-3-0") == wire  # the send and every read agree
    assert _execution(tmp_path, ["broadcast"], "integer").broadcast_id("bcast-3-0") == wire
    others = {x.broadcast_id(f"bcast-3-{i}") for i in range(1, 200)}
    assert wire not in others and len(others) == 199
    # A collision moves on to the next free integer.
    y = _execution(tmp_path, ["broadcast"], "integer")
    y._wire_taken.add(int(wire))
    assert y.broadcast_id("bcast-3-0") == str((int(wire) + 1) % ID_LIMIT)
    assert _execution(tmp_path, ["broadcast"]).broadcast_id("bcast-3-0") == "bcast-3-0"


def test_a_manifest_claims_crdt_types_one_by_one(tmp_path: Path) -> None:
    """One rule: the requirements of unclaimed types are not-claimed, the suite skips
    nothing it needs, and the workload's operations on those types do not run."""
    caps = ["crdt", "metrics", "crdt:g-counter"]
    claimed = {r.id for r in CATALOGUE if r.claimed_by(caps, ["lww"])}
    assert claimed == {"CRDT-G-COUNTER"}
    assert [run.scenario for run in suite_plan(CATALOGUE, caps, ["lww"])] == ["crdt"]
    every = {r.id for r in CATALOGUE if r.claimed_by(["crdt"], ["lww"])}
    assert every >= {"CRDT-G-COUNTER", "CRDT-PN-COUNTER", "CRDT-OR-SET", "CRDT-LWW-REGISTER"}
    x = _execution(tmp_path, caps)
    assert x.applies(Crdt("n1", "hits", "g-counter", "increment", 1))
    assert not x.applies(Crdt("n1", "stock", "pn-counter", "increment", 1))
    assert not x.applies(o.AwaitCrdtHas("n1", "tags", "e1"))
    assert _execution(tmp_path, ["crdt"]).applies(o.AwaitCrdtHas("n1", "tags", "e1"))
    meta = {"time_ms": 0, "type": "meta", "op": "run",
            "args": {"nodes": ["n1", "n2", "n3"], "capabilities": caps,
                     "timing": dict(load_manifest("reference").timing)}}
    verdicts = {v.id: v for v in run_checks(build([meta]), CATALOGUE)}
    assert verdicts["CRDT-PN-COUNTER"].status == "not-claimed"
    assert "'pn-counter' CRDT type" in verdicts["CRDT-PN-COUNTER"].evidence
    assert verdicts["CRDT-G-COUNTER"].status == "untested"


def test_broadcasts_while_a_partition_holds_are_read_back_after_the_heal() -> None:
    """The partition step's ``broadcasts``: sent from each side in turn once the cut is in
    effect, read back (every live node, until each has it) only after the heal."""
    timing = derived_parameters(load_manifest(f"maelstrom:{GOSSIP}").timing, 4)
    steps = [{"kind": "partition", "shape": "halves", "broadcasts": 2, "duration": 1}]
    ops = plan(steps, ["n1", "n2", "n3", "n4"], 5, timing)
    kinds = [op.kind for op in ops]
    sent = [op for op in ops if isinstance(op, Broadcast)]
    assert [op.node in ("n1", "n2") for op in sent] == [True, False]  # one per side
    assert kinds.index("partition") < kinds.index("broadcast") < kinds.index("heal")
    awaited = [op.id for op in ops if isinstance(op, o.AwaitDelivery)]
    assert awaited == [op.id for op in sent]
    assert kinds.index("heal") < kinds.index("await-delivery")
    one_way = plan([{"kind": "partition", "shape": "one-way", "broadcasts": 3}],
                   ["n1", "n2", "n3", "n4"], 5, timing)
    cut = next(op for op in one_way if isinstance(op, Cut))
    senders = {a for a, _ in cut.links}
    assert all(op.node in senders for op in one_way if isinstance(op, Broadcast))


# ---------------------------------------------------------------- bridges on real processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _call(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data,
                                     method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


class Bridges:
    """Bridges of one node binary dialling each other directly (no link plane)."""

    def __init__(self, ids: list[str], node: str, workload: str) -> None:
        self.gossip = {n: _free_port() for n in ids}
        self.control = {n: _free_port() for n in ids}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        for n in ids:
            routes = [a for m in ids if m != n
                      for a in ("--route", f"{m}=127.0.0.1:{self.gossip[m]}")]
            self.procs[n] = subprocess.Popen(
                [sys.executable, "-m", "gossipcert.adapters.maelstrom", "--id", n,
                 "--gossip", f"127.0.0.1:{self.gossip[n]}",
                 "--control", f"127.0.0.1:{self.control[n]}", *routes,
                 "--workload", workload, "--node", node],
                stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + 15
        for n in ids:
            while True:
                try:
                    if self.call(n, "GET", "/v1/node")[1]["ready"]:
                        break
                except OSError:
                    pass
                assert time.monotonic() < deadline, f"{n} never became ready"
                time.sleep(0.05)

    def call(self, node: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return _call(self.control[node], method, path, body)

    def close(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)  # the bridge's group: it and its node
            proc.wait(timeout=10)


@pytest.fixture
def bridges(request: pytest.FixtureRequest) -> Iterator[Bridges]:
    ids, node, workload = request.param
    group = Bridges(ids, node, workload)
    try:
        yield group
    finally:
        group.close()


def _eventually(check: Any, timeout_s: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


@pytest.mark.parametrize("bridges", [(["n1", "n2"], GOSSIP, "broadcast")], indirect=True)
def test_bridge_maps_broadcasts_and_refuses_what_it_cannot_carry(bridges: Bridges) -> None:
    status, node = bridges.call("n1", "GET", "/v1/node")
    assert status == 200 and node["id"] == "n1" and node["ready"]
    assert node["capabilities"] == ["broadcast", "metrics"]
    assert bridges.call("n1", "POST", "/v1/broadcast", {"id": "17", "payload": {"a": 1}}) \
        == (202, {})
    status, error = bridges.call("n1", "POST", "/v1/broadcast", {"id": "bcast-1", "payload": 1})
    assert status == 400 and error["error"] == "bad_request" and "integer" in error["message"]
    assert bridges.call("n1", "POST", "/v1/broadcast", b"x".decode())[0] == 400

    def on_n2() -> list[dict[str, Any]]:
        return list(bridges.call("n2", "GET", "/v1/broadcasts")[1]["received"])

    received = _eventually(on_n2)
    assert [r["id"] for r in received] == ["17"]
    assert received[0]["at_ms"] is None and received[0]["observed_ms"] > 0
    assert received[0]["origin"] is None  # n2's node says only "17"
    mine = bridges.call("n1", "GET", "/v1/broadcasts")[1]["received"]
    assert mine[0]["origin"] == "n1" and mine[0]["payload"] == {"a": 1}
    status, metrics = bridges.call("n1", "GET", "/v1/metrics")
    assert status == 200 and metrics["messages_sent"] >= 1 and metrics["messages_received"] >= 1
    for method, path in (("GET", "/v1/members"), ("POST", "/v1/join"), ("GET", "/v1/kv"),
                         ("GET", "/v1/events?after=0"), ("GET", "/v1/crdt/hits")):
        status, error = bridges.call("n1", method, path, {} if method == "POST" else None)
        assert status == 501 and set(error) == {"error", "message"}, (method, path)
    assert bridges.call("n1", "GET", "/nowhere")[0] == 404


@pytest.mark.parametrize("bridges", [(["n1", "n2", "n3"], COUNTER, "g-counter")],
                         indirect=True)
def test_g_counter_nodes_count_through_seq_kv_hosted_by_the_first_bridge(
        bridges: Bridges) -> None:
    """n2 and n3 reach seq-kv (on n1's bridge) over the inter-bridge links."""
    inc = {"type": "g-counter", "op": "increment"}
    for node, value in (("n1", 3), ("n2", 2), ("n3", 4), ("n3", 1)):
        assert bridges.call(node, "POST", "/v1/crdt/hits", {**inc, "value": value}) == (200, {})

    def values() -> set[Any]:
        return {bridges.call(n, "GET", "/v1/crdt/hits")[1].get("value")
                for n in ("n1", "n2", "n3")}

    assert _eventually(lambda: values() == {10}), values()
    assert bridges.call("n1", "GET", "/v1/crdt/hits")[1] == {"type": "g-counter", "value": 10}
    status, error = bridges.call("n2", "POST", "/v1/crdt/stock", {**inc, "value": 1})
    assert status == 404 and "one counter" in error["message"]
    assert bridges.call("n2", "POST", "/v1/crdt/hits",
                        {"type": "pn-counter", "op": "increment", "value": 1})[0] == 501
    assert bridges.call("n2", "POST", "/v1/crdt/hits", {**inc, "value": -1})[0] == 400
    assert bridges.call("n2", "POST", "/v1/broadcast", {"id": "1", "payload": 0})[0] == 501
    # seq-kv traffic is the nodes' own: n2 sent its cas and reads, and got the replies.
    metrics = bridges.call("n2", "GET", "/v1/metrics")[1]
    assert metrics["messages_sent"] >= 3 and metrics["messages_received"] >= 3


@pytest.mark.parametrize("bridges", [(["n1"], GOSSIP, "broadcast")], indirect=True)
def test_the_node_dies_with_its_bridge(bridges: Bridges) -> None:
    """SIGKILL of the bridge alone (not its group): the kernel kills the node too."""
    proc = bridges.procs["n1"]
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    assert len(children) == 1
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=5)
    assert _eventually(lambda: not Path(f"/proc/{children[0]}").exists()
                       or "Z" in Path(f"/proc/{children[0]}/stat").read_text().split()[2])


# ---------------------------------------------------------------- the command line


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the command line; assert that nothing labelled with its run outlived it (the
    last of a node's processes get a moment to finish dying)."""
    proc = subprocess.Popen([sys.executable, "-m", "gossipcert.harness", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=240)

    def leftovers() -> dict[int, str]:
        return {pid: label for pid, label in orphaned_processes().items()
                if run_label_pid(label) == proc.pid}

    assert _eventually(lambda: not leftovers(), 3.0), leftovers()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _certify(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return _run("certify", "--seed", "1", "--report-dir", str(tmp_path / "run"), *args)


def _one_error(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [x for x in result.stderr.splitlines() if x.startswith("gossipcert: error:")]
    assert len(errors) == 1 and fragment in errors[0], result.stderr


def test_bad_maelstrom_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    _one_error(_certify(tmp_path, "--impl", f"maelstrom:{tmp_path}/gone"), "no such file")
    plain = tmp_path / "plain.py"
    plain.write_text("print()\n")
    _one_error(_certify(tmp_path, "--impl", f"maelstrom:{plain}"), "not an executable file")
    _one_error(_certify(tmp_path, "--impl", f"maelstrom:{GOSSIP}", "--workload", "echo"),
               "unknown Maelstrom workload 'echo'")
    _one_error(_certify(tmp_path, "--workload", "g-counter"), "--workload applies")
    explore = _run("explore", "--impl", f"maelstrom:{COUNTER}", "--workload", "g-counter",
                   "--report-dir", str(tmp_path / "x"))
    _one_error(explore, "keeps one counter")


def test_a_node_that_dies_at_init_is_bad_input(tmp_path: Path) -> None:
    dying = tmp_path / "dying"
    dying.write_text("#!/bin/sh\necho 'no init for you' >&2\nexit 3\n")
    dying.chmod(0o755)
    result = _certify(tmp_path, "--impl", f"maelstrom:{dying}", "--nodes", "3")
    _one_error(result, "node n1 exited with code 2 at start")
    assert "before answering init" in result.stderr and "no init for you" in result.stderr


# ---------------------------------------------------------------- certification (slow)


def _report(tmp_path: Path) -> dict[str, Any]:
    return dict(json.loads((tmp_path / "run" / "report.json").read_text()))


def _statuses(report: dict[str, Any]) -> dict[str, str]:
    return {r["id"]: r["status"] for r in report["requirements"]}


# The certifications of the three sample nodes under their own workloads (the gossip
# node passing the broadcasts sent while partitions hold, the g-counter node, and the
# node that never retries failing them) are in tests/test_compliance.py, which keeps
# their reports: every certification of broadcast runs those partitions.

