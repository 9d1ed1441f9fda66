"""The UDP extension of the Toxiproxy-compatible server, with real UDP sockets: relaying per
client, latency, timeout (drop), loss, and the markers that tell it from real Toxiproxy."""

from __future__ import annotations

import contextlib
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from gossipcert.chaos.toxiproxy import BackgroundServer
from gossipcert.harness.drivers.waiting import wait_until


def api(srv: BackgroundServer, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(srv.url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


@pytest.fixture
def echo() -> Iterator[socket.socket]:
    """A UDP echo server on its own thread-free socket, answered by ``pump``."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    yield s
    s.close()


def pump(echo: socket.socket) -> None:
    """Echo whatever the upstream received so far."""
    while True:
        try:
            data, addr = echo.recvfrom(65535)
        except BlockingIOError:
            return
        echo.sendto(b"echo:" + data, addr)


def client() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.02)
    return s


def exchange(c: socket.socket, echo: socket.socket, target: tuple[str, int], payloads: list[bytes],
             window_s: float = 0.6) -> list[bytes]:
    """Send payloads through the proxy and collect the echoes that come back in time."""
    for p in payloads:
        c.sendto(p, target)
    got: list[bytes] = []

    def all_back() -> bool:  # each look waits up to the socket's timeout
        pump(echo)
        with contextlib.suppress(TimeoutError):
            got.append(c.recvfrom(65535)[0])
        return len(got) >= len(payloads)

    wait_until(all_back, window_s, every_s=0.0)
    return got


def make(srv: BackgroundServer, echo: socket.socket, name: str = "u1") -> tuple[str, int]:
    status, proxy = api(srv, "POST", "/udp/proxies", {
        "name": name, "listen": "127.0.0.1:0",
        "upstream": f"127.0.0.1:{echo.getsockname()[1]}",
    })
    assert status == 201, proxy
    assert proxy["protocol"] == "udp" and proxy["enabled"] is True
    host, _, port = proxy["listen"].rpartition(":")
    assert int(port) > 0
    return host, int(port)


def test_relays_datagrams_both_ways_per_client(proxy_server: BackgroundServer,
                                               echo: socket.socket) -> None:
    target = make(proxy_server, echo)
    a, b = client(), client()
    try:
        assert exchange(a, echo, target, [b"a1", b"a2"]) == [b"echo:a1", b"echo:a2"]
        assert exchange(b, echo, target, [b"b1"]) == [b"echo:b1"]    # its own session
        assert exchange(a, echo, target, [b"a3"]) == [b"echo:a3"]
    finally:
        a.close()
        b.close()


def test_the_extension_is_marked_and_kept_apart_from_tcp_proxies(
    proxy_server: BackgroundServer, echo: socket.socket,
) -> None:
    make(proxy_server, echo)
    status, tcp = api(proxy_server, "GET", "/proxies")
    assert status == 200 and tcp == {}                    # not a TCP proxy
    status, udp = api(proxy_server, "GET", "/udp/proxies")
    assert status == 200 and udp["u1"]["protocol"] == "udp"
    status, body = api(proxy_server, "POST", "/udp/proxies", {"name": "u1", "upstream": "x:1"})
    assert (status, body["error"]) == (409, "proxy already exists")
    status, body = api(proxy_server, "POST", "/udp/proxies", {"name": "u2"})
    assert (status, body["error"]) == (400, "missing required field: upstream")
    status, body = api(proxy_server, "POST", "/udp/proxies/u1/toxics", {"type": "slicer"})
    assert status == 400 and "invalid toxic type" in body["error"]
    status, body = api(proxy_server, "GET", "/udp/proxies/nope")
    assert (status, body["error"]) == (404, "proxy not found")


def test_latency_toxic_delays_each_datagram(proxy_server: BackgroundServer,
                                            echo: socket.socket) -> None:
    target = make(proxy_server, echo)
    c = client()
    try:
        exchange(c, echo, target, [b"warm"])
        status, toxic = api(proxy_server, "POST", "/udp/proxies/u1/toxics",
                            {"type": "latency", "attributes": {"latency": 150}})
        assert status == 200 and toxic["name"] == "latency_downstream"
        t0 = time.monotonic()
        assert exchange(c, echo, target, [b"slow"], window_s=2.0) == [b"echo:slow"]
        assert time.monotonic() - t0 >= 0.14
    finally:
        c.close()


def test_timeout_toxic_drops_everything_until_removed(proxy_server: BackgroundServer,
                                                      echo: socket.socket) -> None:
    target = make(proxy_server, echo)
    c = client()
    try:
        assert exchange(c, echo, target, [b"x"]) == [b"echo:x"]
        status, _ = api(proxy_server, "POST", "/udp/proxies/u1/toxics",
                        {"type": "timeout", "stream": "upstream", "attributes": {"timeout": 0}})
        assert status == 200
        assert exchange(c, echo, target, [b"y"] * 5, window_s=0.3) == []
        status, _ = api(proxy_server, "DELETE", "/udp/proxies/u1/toxics/timeout_upstream")
        assert status == 204
        assert exchange(c, echo, target, [b"z"]) == [b"echo:z"]
    finally:
        c.close()


def test_loss_toxic_drops_about_its_share(
    proxy_server: BackgroundServer, echo: socket.socket,
) -> None:
    target = make(proxy_server, echo)
    c = client()
    try:
        status, toxic = api(proxy_server, "POST", "/udp/proxies/u1/toxics",
                            {"type": "loss", "stream": "upstream", "attributes": {"percent": 50}})
        assert status == 200 and toxic["attributes"] == {"percent": 50}
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        got = len(exchange(c, echo, target, [f"p{j}".encode() for j in range(400)],
                           window_s=0.5))
        assert 100 < got < 300, got
        status, body = api(proxy_server, "POST", "/udp/proxies/u1/toxics",
                           {"name": "bad", "type": "loss", "attributes": {"percent": 101}})
        assert status == 400
    finally:
        c.close()


def test_bandwidth_toxic_lets_datagrams_leave_one_after_another_at_its_rate(
    proxy_server: BackgroundServer, echo: socket.socket,
) -> None:
    """10 datagrams of 1000 bytes at 50 KB/s: 10 KB takes 200 ms on the wire, in order."""
    target = make(proxy_server, echo)
    c = client()
    try:
        exchange(c, echo, target, [b"warm"])
        status, toxic = api(proxy_server, "POST", "/udp/proxies/u1/toxics",
                            {"type": "bandwidth", "stream": "upstream",
                             "attributes": {"rate": 50}})
        assert status == 200 and toxic["attributes"] == {"rate": 50}
        payloads = [bytes([65 + j]) * 1000 for j in range(10)]
        t0 = time.monotonic()
        got = exchange(c, echo, target, payloads, window_s=2.0)
        took = time.monotonic() - t0
        assert got == [b"echo:" + p for p in payloads]
        assert 0.18 <= took < 0.6, took
    finally:
        c.close()


def test_disable_and_reset(proxy_server: BackgroundServer, echo: socket.socket) -> None:
    target = make(proxy_server, echo)
    c = client()
    try:
        api(proxy_server, "POST", "/udp/proxies/u1/toxics", {"type": "timeout"})
        status, proxy = api(proxy_server, "POST", "/udp/proxies/u1", {"enabled": False})
        assert status == 200 and proxy["enabled"] is False
        status, _ = api(proxy_server, "POST", "/reset")
        assert status == 204
        status, proxy = api(proxy_server, "GET", "/udp/proxies/u1")
        assert proxy["enabled"] is True and proxy["toxics"] == []
        new_target = (target[0], int(proxy["listen"].rpartition(":")[2]))
        assert exchange(c, echo, new_target, [b"back"]) == [b"echo:back"]
        status, _ = api(proxy_server, "DELETE", "/udp/proxies/u1")
        assert status == 204
        assert api(proxy_server, "GET", "/udp/proxies")[1] == {}
    finally:
        c.close()


def test_counters_count_datagrams_bytes_forwarded_and_dropped(proxy_server: BackgroundServer,
                                                              echo: socket.socket) -> None:
    target = make(proxy_server, echo)
    c = client()
    try:
        assert len(exchange(c, echo, target, [b"abc", b"defg"])) == 2
        status, stats = api(proxy_server, "GET", "/udp/proxies/u1/stats")
        assert status == 200 and stats["protocol"] == "udp"
        assert stats["upstream"] == {"datagrams": 2, "bytes": 7, "forwarded": 2, "dropped": 0}
        assert stats["downstream"] == {"datagrams": 2, "bytes": 17, "forwarded": 2,
                                       "dropped": 0}
        api(proxy_server, "POST", "/udp/proxies/u1/toxics",
            {"type": "timeout", "stream": "upstream"})
        assert exchange(c, echo, target, [b"xy"], window_s=0.2) == []
        status, every = api(proxy_server, "GET", "/stats")
        assert status == 200 and every["proxies"] == {}
        assert every["udp_proxies"]["u1"]["upstream"] == {"datagrams": 3, "bytes": 9,
                                                          "forwarded": 2, "dropped": 1}
    finally:
        c.close()
    status, body = api(proxy_server, "GET", "/udp/proxies/nope/stats")
    assert (status, body["error"]) == (404, "proxy not found")
