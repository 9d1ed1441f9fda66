"""The HTTP API of the Toxiproxy-compatible server: exact codes and bodies, and the
toxiproxy-python client working against it unchanged."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import toxiproxy
import toxiproxy.api
from gossipcert.chaos.toxiproxy import READY_LINE, BackgroundServer
from gossipcert.chaos.toxiproxy.testing import EchoServer, connect, recv_exactly
from toxiproxy import Toxiproxy
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    with EchoServer() as upstream:
        yield upstream


@pytest.fixture
def tp(proxy_server: BackgroundServer, monkeypatch: pytest.MonkeyPatch) -> Toxiproxy:
    """toxiproxy-python pointed at our server (its host/port are class attributes)."""
    monkeypatch.setattr(toxiproxy.api.APIConsumer, "host", proxy_server.host)
    monkeypatch.setattr(toxiproxy.api.APIConsumer, "port", proxy_server.port)
    return Toxiproxy()


def call(
    srv: BackgroundServer, method: str, path: str, body: Any = None, raw: bytes | None = None
) -> tuple[int, Any]:
    """One request; returns the status and the decoded JSON body (None when empty)."""
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=5)
    try:
        payload = raw if raw is not None else (None if body is None else json.dumps(body))
        conn.request(method, path, payload, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, (json.loads(data) if data.strip() else None)
    finally:
        conn.close()


def make(
    srv: BackgroundServer, name: str, upstream: str = "127.0.0.1:9", **extra: Any
) -> dict[str, Any]:
    status, body = call(
        srv,
        "POST",
        "/proxies",
        {"name": name, "upstream": upstream, "listen": "127.0.0.1:0", **extra},
    )
    assert status == 201, body
    return dict(body)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- proxies -------------------------------------------------------------------------


def test_version_is_json(proxy_server: BackgroundServer) -> None:
    status, body = call(proxy_server, "GET", "/version")
    assert status == 200
    assert isinstance(body["version"], str) and body["version"]


def test_create_returns_201_and_reads_back_the_real_port(proxy_server: BackgroundServer) -> None:
    body = make(proxy_server, "db", "127.0.0.1:5432")
    assert body["name"] == "db"
    assert body["upstream"] == "127.0.0.1:5432"
    assert body["enabled"] is True
    assert body["toxics"] == []
    host, _, port = body["listen"].rpartition(":")
    assert host == "127.0.0.1" and int(port) > 0
    with socket.create_connection(("127.0.0.1", int(port)), timeout=2):
        pass  # really listening there


def test_index_is_an_object_keyed_by_name(proxy_server: BackgroundServer) -> None:
    make(proxy_server, "a")
    make(proxy_server, "b", enabled=False)
    status, body = call(proxy_server, "GET", "/proxies")
    assert status == 200
    assert set(body) == {"a", "b"}
    assert body["b"]["enabled"] is False
    assert set(body["a"]) == {"name", "listen", "upstream", "enabled", "toxics"}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"upstream": "127.0.0.1:1"}, "missing required field: name"),
        ({"name": "x"}, "missing required field: upstream"),
        ({"name": "", "upstream": "127.0.0.1:1"}, "missing required field: name"),
    ],
)
def test_create_missing_fields_is_400(
    proxy_server: BackgroundServer, payload: dict[str, Any], message: str
) -> None:
    assert call(proxy_server, "POST", "/proxies", payload) == (
        400, {"error": message, "status": 400})


def test_create_bad_json_is_400(proxy_server: BackgroundServer) -> None:
    status, body = call(proxy_server, "POST", "/proxies", raw=b"{not json")
    assert status == 400
    assert body["error"].startswith("bad request body")


def test_create_existing_is_409(proxy_server: BackgroundServer) -> None:
    make(proxy_server, "dup")
    status, body = call(proxy_server, "POST", "/proxies",
                        {"name": "dup", "upstream": "127.0.0.1:2"})
    assert (status, body) == (409, {"error": "proxy already exists", "status": 409})


def test_create_on_a_taken_address_is_500(proxy_server: BackgroundServer) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        status, body = call(
            proxy_server,
            "POST",
            "/proxies",
            {"name": "clash", "upstream": "127.0.0.1:1", "listen": f"127.0.0.1:{port}"},
        )
    assert status == 500
    assert body["status"] == 500 and "in use" in body["error"]
    assert call(proxy_server, "GET", "/proxies/clash")[0] == 404


def test_show_update_delete(proxy_server: BackgroundServer) -> None:
    created = make(proxy_server, "p")
    assert call(proxy_server, "GET", "/proxies/p") == (200, created)
    status, body = call(proxy_server, "POST", "/proxies/p", {"enabled": False})
    assert status == 200 and body["enabled"] is False
    status, body = call(proxy_server, "PATCH", "/proxies/p", {"enabled": True})
    assert status == 200 and body["enabled"] is True
    assert body["listen"] == created["listen"]  # re-listens on the same port
    status, body = call(proxy_server, "PATCH", "/proxies/p", {"upstream": "127.0.0.1:7"})
    assert status == 200 and body["upstream"] == "127.0.0.1:7" and body["enabled"] is True
    assert call(proxy_server, "DELETE", "/proxies/p") == (204, None)
    missing = (404, {"error": "proxy not found", "status": 404})
    assert call(proxy_server, "GET", "/proxies/p") == missing
    assert call(proxy_server, "POST", "/proxies/p", {"enabled": True}) == missing
    assert call(proxy_server, "DELETE", "/proxies/p") == missing


def test_update_to_a_new_listen_address(proxy_server: BackgroundServer) -> None:
    make(proxy_server, "mover")
    port = free_port()
    status, body = call(proxy_server, "POST", "/proxies/mover", {"listen": f"127.0.0.1:{port}"})
    assert status == 200 and body["listen"] == f"127.0.0.1:{port}"


def test_names_with_path_characters(proxy_server: BackgroundServer) -> None:
    make(proxy_server, "run1:a->b")
    status, body = call(proxy_server, "GET", "/proxies/run1%3Aa-%3Eb")
    assert status == 200 and body["name"] == "run1:a->b"


# --- toxics --------------------------------------------------------------------------


def test_toxic_create_defaults_and_200(proxy_server: BackgroundServer) -> None:
    make(proxy_server, "p")
    status, body = call(
        proxy_server, "POST", "/proxies/p/toxics",
        {"type": "latency", "attributes": {"latency": 50}},
    )
    assert status == 200
    assert body == {
        "name": "latency_downstream",
        "type": "latency",
        "stream": "downstream",
        "toxicity": 1.0,
        "attributes": {"latency": 50, "jitter": 0},
    }
    status, body = call(
        proxy_server,
        "POST",
        "/proxies/p/toxics",
        {
            "type": "timeout",
            "stream": "upstream",
            "name": "cut",
            "toxicity": 0.5,
            "attributes": {"timeout": 0},
        },
    )
    assert status == 200
    assert body == {
        "name": "cut",
        "type": "timeout",
        "stream": "upstream",
        "toxicity": 0.5,
        "attributes": {"timeout": 0},
    }
    status, listed = call(proxy_server, "GET", "/proxies/p/toxics")
    assert status == 200
    assert [t["name"] for t in listed] == ["cut", "latency_downstream"]  # upstream first
    assert call(proxy_server, "GET", "/proxies/p")[1]["toxics"] == listed


def test_toxic_errors(proxy_server: BackgroundServer) -> None:
    make(proxy_server, "p")
    call(proxy_server, "POST", "/proxies/p/toxics", {"type": "latency"})
    assert call(proxy_server, "POST", "/proxies/p/toxics", {"type": "latency"}) == (
        409,
        {"error": "toxic already exists", "status": 409},
    )
    assert call(proxy_server, "POST", "/proxies/p/toxics", {"type": "nope"}) == (
        400,
        {"error": "invalid toxic type", "status": 400},
    )
    status, body = call(
        proxy_server, "POST", "/proxies/p/toxics", {"type": "latency", "stream": "sideways"}
    )
    assert status == 400 and "stream" in body["error"]
    status, body = call(
        proxy_server,
        "POST",
        "/proxies/p/toxics",
        {"type": "latency", "name": "neg", "attributes": {"latency": -1}},
    )
    assert status == 400 and body["error"].startswith("bad request body")
    assert call(proxy_server, "POST", "/proxies/nope/toxics", {"type": "latency"}) == (
        404,
        {"error": "proxy not found", "status": 404},
    )
    missing = (404, {"error": "toxic not found", "status": 404})
    assert call(proxy_server, "GET", "/proxies/p/toxics/nope") == missing
    assert call(proxy_server, "POST", "/proxies/p/toxics/nope", {"toxicity": 1}) == missing
    assert call(proxy_server, "DELETE", "/proxies/p/toxics/nope") == missing


def test_toxic_update_merges_and_delete(proxy_server: BackgroundServer) -> None:
    make(proxy_server, "p")
    call(
        proxy_server,
        "POST",
        "/proxies/p/toxics",
        {"type": "latency", "name": "lag", "attributes": {"latency": 10, "jitter": 5}},
    )
    status, body = call(proxy_server, "POST", "/proxies/p/toxics/lag",
                        {"attributes": {"latency": 30}})
    assert status == 200
    assert body["attributes"] == {"latency": 30, "jitter": 5}
    assert body["toxicity"] == 1.0
    status, body = call(proxy_server, "PATCH", "/proxies/p/toxics/lag", {"toxicity": 0.25})
    assert status == 200
    assert body["toxicity"] == 0.25 and body["attributes"] == {"latency": 30, "jitter": 5}
    assert call(proxy_server, "GET", "/proxies/p/toxics/lag") == (200, body)
    assert call(proxy_server, "DELETE", "/proxies/p/toxics/lag") == (204, None)
    assert call(proxy_server, "GET", "/proxies/p/toxics") == (200, [])


def test_every_toxic_type_is_accepted(proxy_server: BackgroundServer) -> None:
    make(proxy_server, "p")
    for toxic_type in (
        "latency",
        "bandwidth",
        "slow_close",
        "timeout",
        "reset_peer",
        "slicer",
        "limit_data",
    ):
        status, body = call(proxy_server, "POST", "/proxies/p/toxics", {"type": toxic_type})
        assert status == 200, body
        assert all(v == 0 for v in body["attributes"].values())


def test_reset_enables_and_clears(proxy_server: BackgroundServer) -> None:
    make(proxy_server, "a")
    make(proxy_server, "b", enabled=False)
    call(proxy_server, "POST", "/proxies/a/toxics", {"type": "timeout"})
    assert call(proxy_server, "POST", "/reset") == (204, None)
    _, body = call(proxy_server, "GET", "/proxies")
    assert all(p["enabled"] and p["toxics"] == [] for p in body.values())


# --- populate ------------------------------------------------------------------------


def test_populate_creates_keeps_and_replaces(proxy_server: BackgroundServer) -> None:
    keep_port, change_port = free_port(), free_port()
    first = [
        {"name": "keep", "listen": f"127.0.0.1:{keep_port}", "upstream": "127.0.0.1:1"},
        {"name": "change", "listen": f"127.0.0.1:{change_port}", "upstream": "127.0.0.1:1"},
    ]
    status, body = call(proxy_server, "POST", "/populate", first)
    assert status == 201
    assert [p["name"] for p in body["proxies"]] == ["keep", "change"]
    for name in ("keep", "change"):
        call(proxy_server, "POST", f"/proxies/{name}/toxics", {"type": "latency"})
    second = [
        first[0],
        {**first[1], "upstream": "127.0.0.1:2"},
        {"name": "new", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:3"},
    ]
    status, body = call(proxy_server, "POST", "/populate", second)
    assert status == 201
    by_name = {p["name"]: p for p in body["proxies"]}
    assert set(by_name) == {"keep", "change", "new"}
    assert len(by_name["keep"]["toxics"]) == 1  # identical: kept with its toxics
    assert by_name["change"]["toxics"] == [] and by_name["change"]["upstream"] == "127.0.0.1:2"


def test_populate_validates_everything_first(proxy_server: BackgroundServer) -> None:
    status, body = call(
        proxy_server,
        "POST",
        "/populate",
        [
            {"name": "ok", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"},
            {"name": "broken", "listen": "127.0.0.1:0"},
        ],
    )
    assert status == 400
    assert body["error"] == "missing required field: upstream at proxy 2"
    assert call(proxy_server, "GET", "/proxies") == (200, {})
    status, _ = call(proxy_server, "POST", "/populate", {"name": "not a list"})
    assert status == 400


# --- toxiproxy-python against our server -------------------------------------------


def test_toxiproxy_python_round_trip(tp: Toxiproxy, echo: EchoServer) -> None:
    assert tp.running()
    assert b"version" in tp.version()
    proxy = tp.create(upstream=echo.address, name="echo", listen="127.0.0.1:0")
    assert proxy.enabled is True and proxy.listen.startswith("127.0.0.1:")
    assert set(tp.proxies()) == {"echo"}
    with pytest.raises(ProxyExists):
        tp.create(upstream=echo.address, name="echo")

    with connect(proxy.listen) as sock:
        sock.sendall(b"ping")
        assert recv_exactly(sock, 4) == b"ping"

    proxy.add_toxic(type="latency", attributes={"latency": 20, "jitter": 1})
    proxy.add_toxic(type="timeout", stream="upstream", name="cut", toxicity=0.0)
    toxics = proxy.toxics()
    assert set(toxics) == {"latency_downstream", "cut"}
    assert toxics["latency_downstream"].attributes == {"latency": 20, "jitter": 1}
    assert toxics["cut"].toxicity == 0.0
    with pytest.raises(ProxyExists):
        proxy.add_toxic(type="latency")
    with pytest.raises(InvalidToxic):
        proxy.add_toxic(type="no_such_toxic")
    assert proxy.destroy_toxic("cut") is True
    assert set(proxy.toxics()) == {"latency_downstream"}

    with proxy.down():
        assert tp.get_proxy("echo").enabled is False
        with pytest.raises(OSError):
            connect(proxy.listen, timeout_s=1).close()
    assert tp.get_proxy("echo").enabled is True
    with connect(proxy.listen) as sock:
        sock.sendall(b"back")
        assert recv_exactly(sock, 4) == b"back"

    assert tp.reset() is True
    assert proxy.toxics() == {}
    assert tp.destroy(proxy) is True
    assert tp.proxies() == {}
    with pytest.raises(NotFound):
        proxy.toxics()


def test_toxiproxy_python_populate(tp: Toxiproxy, echo: EchoServer) -> None:
    port = free_port()
    wanted = [{"name": "one", "upstream": echo.address, "listen": f"127.0.0.1:{port}"}]
    created = tp.populate(wanted)
    assert [p.name for p in created] == ["one"]
    assert tp.populate(wanted) == []  # identical: nothing to do
    tp.destroy_all()
    assert tp.proxies() == {}


# --- the command line ----------------------------------------------------------------


def _start_cli(listen: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "gossipcert.chaos.toxiproxy", "serve", "--listen", listen],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "0"},
    )


def test_cli_prints_ready_line_and_stops_on_sigterm() -> None:
    port = free_port()
    proc = _start_cli(f"127.0.0.1:{port}")
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line == READY_LINE.format(address=f"127.0.0.1:{port}")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/version")
        assert conn.getresponse().status == 200
        conn.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_cli_on_a_taken_address_exits_2_with_one_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = _start_cli(f"127.0.0.1:{port}")
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "in use" in lines[0] and "Traceback" not in err


def test_background_server_reports_a_taken_address() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(OSError):
            BackgroundServer(f"127.0.0.1:{port}").start()
        assert time.monotonic() - started < 5
