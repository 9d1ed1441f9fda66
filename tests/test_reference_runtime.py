"""The reference node as real processes on 127.0.0.x: transport, control API, CLI."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

TIMING = [
    "--probe-interval-ms", "300",
    "--probe-timeout-ms", "150",
    "--suspicion-mult", "4",
    "--gossip-interval-ms", "100",
    "--push-pull-interval-ms", "1000",
]  # fmt: skip


def free_address(host: str) -> str:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return f"{host}:{sock.getsockname()[1]}"


def http(method: str, url: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_for(check: Callable[[], bool], timeout_s: float, interval_s: float = 0.05) -> float:
    """Seconds until `check()` held; fails the test on timeout."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        try:
            if check():
                return time.monotonic() - start
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(interval_s)
    pytest.fail(f"condition not met within {timeout_s} s")


@dataclass
class Proc:
    id: str
    gossip: str
    control: str
    popen: subprocess.Popen[bytes]

    def url(self, path: str) -> str:
        return f"http://{self.control}{path}"

    def get(self, path: str) -> Any:
        status, body = http("GET", self.url(path))
        assert status == 200, body
        return body

    def statuses(self) -> dict[str, str]:
        return {m["id"]: m["status"] for m in self.get("/v1/members")["members"]}


def spawn(node_id: str, host: str, *extra: str) -> Proc:
    gossip, control = free_address(host), free_address(host)
    command = [sys.executable, "-m", "reference_node", "--id", node_id,
               "--gossip", gossip, "--control", control, *TIMING, *extra]  # fmt: skip
    popen = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return Proc(node_id, gossip, control, popen)


def stop(procs: list[Proc]) -> None:
    for proc in procs:
        if proc.popen.poll() is None:
            proc.popen.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            proc.popen.wait()
        if proc.popen.stderr is not None:
            proc.popen.stderr.close()


@pytest.fixture
def single() -> Iterator[Proc]:
    proc = spawn("solo", "127.0.0.5")
    try:
        wait_for(lambda: proc.get("/v1/node")["ready"], 10)
        yield proc
    finally:
        stop([proc])


@pytest.mark.slow
def test_three_processes_join_replicate_broadcast_and_detect_a_kill() -> None:
    a = spawn("a", "127.0.0.2")
    procs = [a]
    try:
        wait_for(lambda: a.get("/v1/node")["ready"], 10)
        # b joins with --seed (and a dial map pointing at the real address); c joins
        # at run time through the control API.
        procs.append(spawn("b", "127.0.0.3", "--seed", a.gossip, "--route", f"a={a.gossip}"))
        procs.append(spawn("c", "127.0.0.4"))
        b, c = procs[1], procs[2]
        wait_for(lambda: c.get("/v1/node")["ready"], 10)
        assert http("POST", c.url("/v1/join"), {"seeds": [b.gossip]}) == (200, {"joined": True})
        wait_for(lambda: all(p.get("/v1/node")["ready"] for p in procs), 10)
        wait_for(lambda: all(p.statuses() == dict.fromkeys("abc", "alive") for p in procs), 10)

        status, put = http("PUT", b.url("/v1/kv/color"), {"value": "green"})
        assert status == 200 and isinstance(put["context"], str) and len(put["timestamp"]) == 2
        wait_for(lambda: http("GET", c.url("/v1/kv/color"))[1].get("values") == ["green"], 5)
        wait_for(lambda: len({p.get("/v1/kv")["digest"] for p in procs}) == 1, 5)

        status, _ = http("POST", c.url("/v1/broadcast"), {"id": "hello-1", "payload": [1, 2]})
        assert status == 202
        wait_for(lambda: all(p.get("/v1/broadcasts")["received"] for p in procs), 5)
        for proc in procs:
            (got,) = proc.get("/v1/broadcasts")["received"]
            assert (got["id"], got["origin"], got["payload"]) == ("hello-1", "c", [1, 2])

        time.sleep(1.0)  # a quiet cluster: nobody may have been suspected
        for proc in procs:
            kinds = {(e["member"], e["status"]) for e in proc.get("/v1/events")["events"]
                     if e["kind"] == "member"}  # fmt: skip
            assert {status for _, status in kinds} == {"alive"}

        c.popen.send_signal(signal.SIGKILL)
        killed_at_ms = time.time() * 1000
        detection = wait_for(lambda: a.statuses()["c"] == b.statuses()["c"] == "dead", 15)
        # (2n-1) probe periods + suspicion timeout + dissemination, n = 3.
        assert detection < 5 * 0.3 + 1.2 + 1.5
        for proc in (a, b):
            events = proc.get("/v1/events")["events"]
            dead = [e for e in events if e.get("member") == "c" and e["status"] == "dead"]
            assert len(dead) == 1 and dead[0]["at_ms"] > killed_at_ms
        print(f"kill -9 detected as dead by all live members in {detection:.2f} s")

        metrics = a.get("/v1/metrics")
        assert metrics["messages_sent"] > 0 and metrics["bytes_received"] > 0
        assert metrics["by_type"]["ping"]["messages_sent"] > 0
    finally:
        stop(procs)


def test_garbage_on_the_gossip_port_is_rejected_not_fatal(single: Proc) -> None:
    host, port = single.gossip.rsplit(":", 1)
    payloads = [
        b"\x00\x00\x00\x05hello",  # a frame that is not JSON
        struct.pack(">I", 64 * 1024 * 1024) + b"x",  # larger than the 4 MiB limit
        b"\x00\x00\x00\x02[]",  # JSON, but not a message
        os.urandom(4096),
    ]
    for payload in payloads:
        with socket.create_connection((host, int(port)), timeout=2) as sock:
            sock.sendall(payload)
            sock.settimeout(2)
            with contextlib.suppress(ConnectionResetError):
                assert sock.recv(1) == b""  # the node closes the connection on us
    assert single.get("/v1/node")["ready"]
    assert single.get("/v1/metrics")["frames_rejected"] >= 3


def test_control_api_shapes_and_errors(single: Proc) -> None:
    node = single.get("/v1/node")
    assert node["id"] == "solo" and node["impl"] and "kv" in node["capabilities"]
    (me,) = single.get("/v1/members")["members"]
    assert me == {"id": "solo", "address": single.gossip, "status": "alive", "incarnation": 0}

    assert http("PUT", single.url("/v1/kv/a/b"), raw=b"{not json")[0] == 400
    assert http("PUT", single.url("/v1/kv/a/b"), {"nope": 1})[0] == 400
    assert http("PUT", single.url("/v1/kv/a/b"), {"value": {"n": 1}})[0] == 200
    status, got = http("GET", single.url("/v1/kv/a/b"))
    assert status == 200 and got["key"] == "a/b" and got["values"] == [{"n": 1}]
    assert http("DELETE", single.url("/v1/kv/a/b"))[0] == 200
    status, missing = http("GET", single.url("/v1/kv/a/b"))
    assert status == 404 and set(missing) == {"error", "message"}
    assert single.get("/v1/kv")["entries"] == {}

    status, crdt = http("POST", single.url("/v1/crdt/c1"), {"type": "g-counter", "op": "increment"})
    assert status == 200 and crdt == {"type": "g-counter", "value": 1}
    assert http("GET", single.url("/v1/nowhere"))[0] == 404
    assert http("POST", single.url("/v1/broadcast"), {"payload": 1})[0] == 400

    events = single.get("/v1/events?after=0")
    assert events["events"][0]["seq"] == 1 and events["next"] == events["events"][-1]["seq"]
    assert single.get(f"/v1/events?after={events['next']}")["events"] == []
    assert http("GET", single.url("/v1/events?after=x"))[0] == 400

    assert http("POST", single.url("/v1/leave"))[0] == 202
    wait_for(lambda: single.get("/v1/members")["members"][0]["status"] == "left", 3)


def test_port_in_use_exits_2_with_one_line() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.6", 0))
        holder.listen()
        taken = f"127.0.0.6:{holder.getsockname()[1]}"
        result = subprocess.run(
            [sys.executable, "-m", "reference_node", "--id", "x", "--gossip", taken,
             "--control", free_address("127.0.0.6")],
            capture_output=True, text=True, timeout=20,
        )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [f"reference_node: cannot listen on {taken} (gossip): address already in use"]


@pytest.mark.parametrize(
    "argv",
    [
        ["--id", "x", "--gossip", "nowhere", "--control", "127.0.0.1:1"],
        ["--id", "x", "--gossip", "127.0.0.1:1", "--control", "127.0.0.1:2", "--fanout", "zero"],
        ["--id", "x", "--gossip", "127.0.0.1:1", "--control", "127.0.0.1:2", "--fanout", "0"],
    ],
)
def test_bad_flags_exit_2_with_one_line(argv: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "reference_node", *argv], capture_output=True, text=True, timeout=20
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("reference_node: ")


def test_sigterm_shuts_down_cleanly(single: Proc) -> None:
    single.popen.send_signal(signal.SIGTERM)
    assert single.popen.wait(timeout=5) == 0
