"""The reference runtime's transport choice, in process with real sockets: which messages
travel as datagrams (probes, acks, indirect probes, gossip and pull requests that fit
memberlist's 1400 bytes) and to which dial map, which over TCP, datagrams sealed like
frames, and garbage datagrams dropped and counted."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from gossipcert.reference_node.core.codec import encode_message
from gossipcert.reference_node.core.effects import SendMessage
from gossipcert.reference_node.core.hlc import Timestamp
from gossipcert.reference_node.core.keyring import Keyring, ReplayGuard
from gossipcert.reference_node.core.messages import (
    BroadcastUpdate,
    FullState,
    Gossip,
    Message,
    Ping,
    Pull,
    PushPull,
)
from gossipcert.reference_node.framing import (
    MAX_DATAGRAM_BYTES,
    FrameDecoder,
    decode_datagram,
    encode_datagram,
)
from gossipcert.reference_node.metrics import Metrics
from gossipcert.reference_node.runtime import GossipRuntime, now_ms

HEADER: dict[str, Any] = {"sender": "me", "sender_addr": "127.0.0.1:1", "hlc": Timestamp(1, 0)}


def ping() -> Ping:
    return Ping(**HEADER, seq=7, target="p")


def gossip(n: int) -> Gossip:
    """A gossip carrying ``n`` broadcasts of 100 bytes each."""
    updates = tuple(BroadcastUpdate(f"b{i}", "me", "x" * 100) for i in range(n))
    return Gossip(**HEADER, updates=updates)


class Peer:
    """A peer's UDP socket and TCP listener on one port, as the node under test sees it."""

    def __init__(self) -> None:
        self.tcp = socket.socket()
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen()
        self.tcp.settimeout(2)
        self.port = self.tcp.getsockname()[1]
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", self.port))
        self.udp.settimeout(0.3)
        self.addr = f"127.0.0.1:{self.port}"

    def datagrams(self) -> list[bytes]:
        out = []
        while True:
            try:
                out.append(self.udp.recvfrom(65535)[0])
            except TimeoutError:
                return out

    def frames(self) -> list[bytes]:
        conn, _ = self.tcp.accept()
        conn.settimeout(0.3)
        decoder, out = FrameDecoder(), []
        with conn:
            while True:
                try:
                    chunk = conn.recv(65535)
                except TimeoutError:
                    return out
                if not chunk:
                    return out
                out += decoder.feed(chunk)

    def close(self) -> None:
        self.tcp.close()
        self.udp.close()


@pytest.fixture
def peer() -> Iterator[Peer]:
    p = Peer()
    yield p
    p.close()


def run(runtime: GossipRuntime, messages: list[tuple[str | None, str, Message]],
        after: Any = None) -> None:
    """Listen, send each message as the core's effect would, let the loop write, close."""
    async def main() -> None:
        await runtime.listen("127.0.0.1", 0)
        for to_id, address, message in messages:
            runtime._send(SendMessage(to_id, address, message))
        if after is not None:
            after(runtime)
        await asyncio.sleep(0.2)
        await runtime.close()

    asyncio.run(main())


def test_probes_and_small_gossip_are_datagrams_to_the_udp_route_state_sync_is_tcp(
        peer: Peer) -> None:
    metrics = Metrics()
    runtime = GossipRuntime({"p": peer.addr}, metrics, udp_routes={"p": peer.addr})
    sync = PushPull(**HEADER, state=FullState())
    run(runtime, [("p", "elsewhere:9", ping()), ("p", "elsewhere:9", gossip(3)),
                  ("p", "elsewhere:9", Pull(**HEADER, summary=(1, 2))),
                  ("p", "elsewhere:9", sync)])
    kinds = [decode_datagram(d, None, ReplayGuard(), 0)[0] for d in peer.datagrams()]
    assert [type(m).__name__ for m in kinds] == ["Ping", "Gossip", "Pull"]
    assert [f[:40] for f in peer.frames()] == [
        json.dumps(encode_message(sync), separators=(",", ":")).encode()[:40]]
    assert metrics.datagrams_sent == 3 and metrics.messages_sent == 4


def test_a_message_larger_than_one_datagram_goes_over_tcp(peer: Peer) -> None:
    """memberlist's limit: 1400 bytes of UDP payload. Gossip under it is one datagram,
    over it a TCP frame."""
    small, big = gossip(5), gossip(20)
    assert len(encode_datagram(encode_message(small))) <= MAX_DATAGRAM_BYTES
    assert len(encode_datagram(encode_message(big))) > MAX_DATAGRAM_BYTES
    runtime = GossipRuntime({"p": peer.addr}, Metrics(), udp_routes={"p": peer.addr})
    run(runtime, [("p", peer.addr, small), ("p", peer.addr, big)])
    assert len(peer.datagrams()) == 1
    assert len(peer.frames()) == 1


def test_a_peer_with_a_tcp_route_and_no_udp_route_gets_everything_over_tcp(
        peer: Peer) -> None:
    """A harness that routes only TCP (no udp_route_args) must see every message in
    its proxies, so nothing may bypass them as a datagram."""
    runtime = GossipRuntime({"p": peer.addr}, Metrics())
    run(runtime, [("p", "127.0.0.1:1", ping())])
    assert peer.datagrams() == []
    assert len(peer.frames()) == 1


def test_without_any_dial_map_datagrams_go_to_the_advertised_address(peer: Peer) -> None:
    runtime = GossipRuntime({}, Metrics())
    run(runtime, [("p", peer.addr, ping()), (None, peer.addr, ping())])
    assert len(peer.datagrams()) == 2


def test_datagrams_are_sealed_each_with_its_own_nonce(peer: Peer) -> None:
    key = os.urandom(32)
    runtime = GossipRuntime({"p": peer.addr}, Metrics(), Keyring([key]),
                            udp_routes={"p": peer.addr})
    run(runtime, [("p", peer.addr, ping()), ("p", peer.addr, ping())])
    got = peer.datagrams()
    assert len(got) == 2 and got[0][:1] == b"\x01" and got[0][1:13] != got[1][1:13]
    assert b'"ping"' not in got[0]  # not plaintext
    guard = ReplayGuard()
    now = now_ms()
    opened = [decode_datagram(d, Keyring([key]), guard, now) for d in got]
    assert all(m is not None and m.kind == "ping" for m, _ in opened), opened
    assert decode_datagram(got[0], Keyring([key]), guard, now)[1] == "replayed"
    assert decode_datagram(got[0], Keyring([os.urandom(32)]), ReplayGuard(), now)[1] == (
        "decrypt_failed")
    assert decode_datagram(encode_datagram(encode_message(ping())), Keyring([key]),
                           ReplayGuard(), now)[1] == "unencrypted"


def test_garbage_datagrams_are_dropped_and_counted_never_fatal() -> None:
    metrics = Metrics()
    runtime = GossipRuntime({}, metrics)
    garbage = [b"", b"x", b"{}", b"[1]", b"\xff" * 2000, b'{"kind":"ping"}', os.urandom(1200)]

    def spray(rt: GossipRuntime) -> None:
        assert rt._udp is not None
        host, port = rt._udp.get_extra_info("sockname")[:2]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for g in garbage:
                s.sendto(g, (host, port))

    run(runtime, [], after=spray)
    assert metrics.datagrams_dropped == len(garbage)
    assert metrics.datagrams_received == 0 and metrics.frames_rejected == len(garbage)
