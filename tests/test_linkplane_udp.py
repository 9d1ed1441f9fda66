"""The link plane with datagrams: each directed link's UDP proxy made beside its TCP proxy
(on the same port), cut, delayed and made lossy with it, confirmed, healed, counted and
removed, against the real server and real UDP sockets."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gossipcert.chaos.linkplane import LinkPlane
from gossipcert.chaos.toxiproxy import BackgroundServer
from gossipcert.chaos.toxiproxy_client import ToxiproxyClient, ToxiproxyError
from gossipcert.harness.drivers.faultplanes import LinkFaults


def udp_socket() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.05)
    return s


def received(sock: socket.socket, window_s: float = 0.4) -> list[bytes]:
    out, deadline = [], time.monotonic() + window_s
    while time.monotonic() < deadline:
        try:
            out.append(sock.recvfrom(65535)[0])
        except TimeoutError:
            continue
    return out


def port(addr: str) -> int:
    return int(addr.rpartition(":")[2])


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[tuple[LinkPlane, dict[str, socket.socket]]]:
    """Three "nodes" (a UDP socket each, no TCP listener needed) behind a shared server,
    so the plane removes its proxies one by one at the end."""
    nodes = {n: udp_socket() for n in ("n1", "n2", "n3")}
    with BackgroundServer() as srv:
        links = LinkPlane.open("t", tmp_path, srv.url)
        try:
            yield links, nodes
        finally:
            links.close()
            client = ToxiproxyClient(srv.url)
            assert client.proxies() == {} and client.udp_proxies() == {}  # nothing left
            client.close()
    for s in nodes.values():
        s.close()


def send(links: LinkPlane, nodes: dict[str, socket.socket], src: str, dst: str,
         payloads: list[bytes]) -> list[bytes]:
    target = links.udp_routes()[src][dst]
    for p in payloads:
        nodes[src].sendto(p, ("127.0.0.1", port(target)))
    return received(nodes[dst])


def test_udp_proxies_share_the_tcp_proxys_port_and_relay_datagrams(
        plane: tuple[LinkPlane, dict[str, socket.socket]]) -> None:
    links, nodes = plane
    addrs = {n: f"127.0.0.1:{s.getsockname()[1]}" for n, s in nodes.items()}
    routes = links.build(addrs, udp=True)
    udp_routes = links.udp_routes()
    assert len(links.listen) == len(links.udp_listen) == 6
    for src, peers in routes.items():
        assert udp_routes[src] == peers  # one port per link, both protocols
    assert send(links, nodes, "n1", "n2", [b"ping"]) == [b"ping"]
    faults = LinkFaults(links)
    assert "loss" in faults.faults
    reading = faults.traffic(["n1", "n2", "n3"])
    assert reading is not None and reading["unit"] == "chunks+datagrams"
    assert reading["links"]["n1->n2"]["up_datagrams"] == 1
    assert reading["nodes"]["n1"]["messages"] == 1 and reading["nodes"]["n1"]["bytes"] == 4


def test_a_cut_a_delay_and_loss_hold_on_the_udp_proxy_and_heal_leaves_nothing(
        plane: tuple[LinkPlane, dict[str, socket.socket]]) -> None:
    links, nodes = plane
    links.build({n: f"127.0.0.1:{s.getsockname()[1]}" for n, s in nodes.items()}, udp=True)
    faults = LinkFaults(links)
    assert send(links, nodes, "n1", "n2", [b"a"]) == [b"a"]  # n1 routes its datagrams
    faults.cut([("n1", "n2")])
    assert send(links, nodes, "n1", "n2", [b"cut"]) == []
    assert send(links, nodes, "n1", "n3", [b"other"]) == [b"other"]  # only that link
    faults.heal()
    assert links.clean()
    assert send(links, nodes, "n1", "n2", [b"back"]) == [b"back"]

    faults.latency([("n1", "n2")], 150, 0)
    started = time.monotonic()
    assert send(links, nodes, "n1", "n2", [b"slow"]) == [b"slow"]
    assert time.monotonic() - started >= 0.14
    faults.heal()

    faults.loss([("n1", "n2")], 0.5)
    got = send(links, nodes, "n1", "n2", [b"%d" % i for i in range(200)])
    assert 50 <= len(got) <= 150  # half of 200, well inside chance
    faults.heal()
    assert faults.heal_evidence["datagrams_lost"]["dropped"] == 200 - len(got)
    faults.heal()
    assert faults.heal_evidence == {}  # a heal with no loss before it reports none
    assert links.clean() and not links.lossy and not links.cut and not links.delayed


def test_the_heal_after_loss_reports_what_the_udp_proxies_dropped(
        plane: tuple[LinkPlane, dict[str, socket.socket]]) -> None:
    links, nodes = plane
    links.build({n: f"127.0.0.1:{s.getsockname()[1]}" for n, s in nodes.items()}, udp=True)
    faults = LinkFaults(links)
    send(links, nodes, "n1", "n2", [b"first"])
    faults.loss([("n1", "n2")], 1.0)
    assert links.confirm_loss([("n1", "n2")], 1.0)
    assert send(links, nodes, "n1", "n2", [b"x"] * 10) == []
    faults.heal()
    assert faults.heal_evidence == {"datagrams_lost": {
        "plane": "link", "links": 1, "datagrams": 10, "dropped": 10}}


def test_a_tcp_only_link_plane_offers_no_loss(
        plane: tuple[LinkPlane, dict[str, socket.socket]]) -> None:
    """Without UDP proxies (a node that routes only TCP) the link plane cannot drop
    messages, so loss goes to the packet plane as before."""
    links, nodes = plane
    links.build({n: f"127.0.0.1:{s.getsockname()[1]}" for n, s in nodes.items()})
    assert links.udp_listen == {} and links.udp_routes() == {}
    assert "loss" not in LinkFaults(links).faults


def test_a_server_without_udp_proxies_gives_a_tcp_only_dial_map(
        plane: tuple[LinkPlane, dict[str, socket.socket]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A real Toxiproxy answers ``/udp/proxies`` with 404: the run goes on with TCP
    proxies only, so the nodes get no UDP dial map and send everything over TCP."""
    links, nodes = plane

    def no_udp(*_: object, **__: object) -> None:
        raise ToxiproxyError(404, "not found")

    monkeypatch.setattr(links.client, "create_udp_proxy", no_udp)
    routes = links.build({n: f"127.0.0.1:{s.getsockname()[1]}" for n, s in nodes.items()},
                         udp=True)
    assert len(links.listen) == 6 and sum(len(r) for r in routes.values()) == 6
    assert links.udp_listen == {} and links.udp_routes() == {}
    assert "loss" not in LinkFaults(links).faults
