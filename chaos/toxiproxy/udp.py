"""UDP proxying: an extension of the Toxiproxy API, which is TCP only (its issue #39).

Marked so a client can tell (docs/protocol-notes.md: extensions are new endpoints or new toxic
types): UDP proxies live under their own endpoint family, ``/udp/proxies``, which a real
Toxiproxy answers with 404, and every UDP proxy reads back ``"protocol": "udp"``.

    GET/POST          /udp/proxies                      list (object by name) / create (201)
    GET/POST/DELETE   /udp/proxies/{name}               show / update (enabled) / delete (204)
    GET/POST          /udp/proxies/{name}/toxics        list / add (200)
    GET/POST/DELETE   /udp/proxies/{name}/toxics/{t}    show / update / remove (204)

Bodies, errors and status codes are those of the TCP API. A datagram relay: each client
address gets its own socket towards the upstream, so replies find their way back to the
client that caused them; sessions idle for ``SESSION_IDLE_S`` are dropped.

Toxics, per datagram (``upstream`` = client to upstream, ``downstream`` = replies;
``toxicity`` is the chance a toxic applies to a datagram):

``latency``  ``latency``, ``jitter`` ms: delay the datagram.
``timeout``  drop every datagram (whatever ``timeout``): the partition of a UDP link.
``loss``     (new type) ``percent``: drop that share of datagrams at random.
``bandwidth`` ``rate`` KB/s: datagrams leave one after another at that rate (each waits
             for the ones before it, queued in order; Toxiproxy's TCP ``bandwidth``).

``POST /reset`` enables every UDP proxy and removes its toxics too.

Counters, per direction (``GET /udp/proxies/{name}/stats``, and in ``GET /stats``):
``datagrams`` and ``bytes`` that arrived from the sender (whatever toxics then do),
``forwarded`` and ``dropped`` datagrams. Never reset while the proxy exists.
"""

from __future__ import annotations

import asyncio
import functools
import random
import socket
from collections.abc import Iterator
from typing import Any

from gossipcert.chaos.toxiproxy.link import join_hostport, split_hostport
from gossipcert.chaos.toxiproxy.proxy import (
    ApiError,
    _text_field,
    bad_body,
    find_toxic,
    new_toxic,
    update_toxic,
)
from gossipcert.chaos.toxiproxy.toxics import STREAMS, ToxicSpec

UDP_TOXICS: dict[str, dict[str, int]] = {
    "latency": {"latency": 0, "jitter": 0},
    "timeout": {"timeout": 0},
    "loss": {"percent": 0},
    "bandwidth": {"rate": 0},
}
SESSION_IDLE_S = 60.0
DEFAULT_LISTEN = "127.0.0.1:0"


def _bind_udp(listen: str) -> socket.socket:
    try:
        host, port = split_hostport(listen)
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_DGRAM,
                                   flags=socket.AI_PASSIVE)
    except (ValueError, OSError) as exc:
        raise ApiError(f"listen udp {listen}: {exc}", 500) from None
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    family, socktype, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, socktype, proto)
    try:
        sock.bind(sockaddr)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ApiError(f"listen udp {listen}: bind: {exc.strerror or exc}", 500) from None
    return sock


class DatagramCount:
    """One direction of a UDP proxy: what arrived from its sender, and what became of it."""

    __slots__ = ("datagrams", "bytes", "forwarded", "dropped")

    def __init__(self) -> None:
        self.datagrams = 0
        self.bytes = 0
        self.forwarded = 0
        self.dropped = 0

    def to_json(self) -> dict[str, int]:
        return {"datagrams": self.datagrams, "bytes": self.bytes,
                "forwarded": self.forwarded, "dropped": self.dropped}


class _Relay(asyncio.DatagramProtocol):
    """Receives on one socket and hands each datagram to a callback."""

    def __init__(self, on_datagram: Any) -> None:
        self.on_datagram = on_datagram
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        pass  # an ICMP unreachable from a closed upstream port: UDP loses it, so do we


class _Session:
    """One client address: its own socket to the upstream."""

    def __init__(self, relay: _Relay, client: tuple[Any, ...]) -> None:
        self.relay = relay
        self.client = client
        self.last = asyncio.get_running_loop().time()
        self.pending: list[bytes] = []  # datagrams that came before the upstream socket

    def close(self) -> None:
        if self.relay.transport is not None:
            self.relay.transport.close()


class UdpProxy:
    """A named UDP relay from ``listen`` to ``upstream`` through per-datagram toxics."""

    def __init__(self, name: str, listen: str, upstream: str) -> None:
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.enabled = False
        self.toxics: list[ToxicSpec] = []
        self._front: _Relay | None = None
        self._sessions: dict[tuple[Any, ...], _Session] = {}
        self._reaper: asyncio.TimerHandle | None = None
        self._rng = random.Random()
        self.counts = {"upstream": DatagramCount(), "downstream": DatagramCount()}
        # Per direction: when the bandwidth toxic's "wire" is free again (loop time).
        self._wire_free = {"upstream": 0.0, "downstream": 0.0}
        self._up, self._down = self.counts["upstream"], self.counts["downstream"]

    async def start(self) -> None:
        if self._front is not None:
            return
        try:
            split_hostport(self.upstream)
        except ValueError as exc:
            raise ApiError(f"invalid upstream address: {exc}", 400) from None
        sock = _bind_udp(self.listen)
        loop = asyncio.get_running_loop()
        relay = _Relay(self._from_client)
        await loop.create_datagram_endpoint(lambda: relay, sock=sock)
        self._front = relay
        host, port = sock.getsockname()[:2]
        self.listen = join_hostport(host, port)
        self.enabled = True
        self._reaper = loop.call_later(SESSION_IDLE_S, self._reap)

    def stop(self) -> None:
        if self._front is not None and self._front.transport is not None:
            self._front.transport.close()
        self._front = None
        for session in self._sessions.values():
            session.close()
        self._sessions.clear()
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        self.enabled = False

    def _reap(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        for client, session in list(self._sessions.items()):
            if now - session.last > SESSION_IDLE_S:
                session.close()
                del self._sessions[client]
        self._reaper = loop.call_later(SESSION_IDLE_S, self._reap)

    # ---- the relay -------------------------------------------------------------------

    def _from_client(self, data: bytes, client: tuple[Any, ...]) -> None:
        count = self._up
        count.datagrams += 1
        count.bytes += len(data)
        session = self._sessions.get(client)
        if session is None:
            loop = asyncio.get_running_loop()
            relay = _Relay(lambda d, _a, c=client: self._from_upstream(d, c))
            session = self._sessions[client] = _Session(relay, client)
            host, port = split_hostport(self.upstream)
            task = loop.create_datagram_endpoint(lambda: relay, remote_addr=(host, port))
            opening = asyncio.ensure_future(task)
            opening.add_done_callback(functools.partial(self._upstream_ready, session))
        session.last = asyncio.get_running_loop().time()
        self._through(data, "upstream", lambda d: self._send_up(session, d))

    def _upstream_ready(self, session: _Session, opening: asyncio.Future[Any]) -> None:
        if opening.cancelled() or opening.exception() is not None:
            self._sessions.pop(session.client, None)
            return
        held, session.pending = session.pending, []
        for data in held:
            self._send_up(session, data)

    def _send_up(self, session: _Session, data: bytes) -> None:
        transport = session.relay.transport
        if transport is None:
            session.pending.append(data)
        elif not transport.is_closing():
            transport.sendto(data)
            self._up.forwarded += 1

    def _from_upstream(self, data: bytes, client: tuple[Any, ...]) -> None:
        count = self._down
        count.datagrams += 1
        count.bytes += len(data)
        session = self._sessions.get(client)
        if session is not None:
            session.last = asyncio.get_running_loop().time()
        self._through(data, "downstream", lambda d: self._send_down(client, d))

    def _send_down(self, client: tuple[Any, ...], data: bytes) -> None:
        if self._front is not None and self._front.transport is not None:
            self._front.transport.sendto(data, client)
            self._down.forwarded += 1

    def _through(self, data: bytes, stream: str, deliver: Any) -> None:
        """Apply this direction's toxics to one datagram, then deliver, drop or delay it."""
        delay_ms = 0.0
        for spec in self.toxics:
            if spec.stream != stream or self._rng.random() >= spec.toxicity:
                continue
            attrs = spec.attributes
            if spec.type == "timeout" or (
                spec.type == "loss" and self._rng.random() * 100 < attrs["percent"]
            ):
                self.counts[stream].dropped += 1
                return
            if spec.type == "latency":
                jitter = attrs["jitter"]
                delay_ms += attrs["latency"] + (self._rng.uniform(-jitter, jitter) if jitter
                                                else 0.0)
            if spec.type == "bandwidth" and attrs["rate"] > 0:
                delay_ms += self._queue_on_wire(stream, len(data), attrs["rate"])
        if delay_ms <= 0:
            deliver(data)
        else:
            asyncio.get_running_loop().call_later(delay_ms / 1000.0, deliver, data)

    def _queue_on_wire(self, stream: str, size: int, rate_kbs: int) -> float:
        """The ms this datagram waits for the ones before it on a wire of ``rate_kbs``
        KB/s (1 KB/s is one byte per ms), plus its own time on the wire."""
        now = asyncio.get_running_loop().time()
        start = max(now, self._wire_free[stream])
        self._wire_free[stream] = start + size / (rate_kbs * 1000.0)
        return (self._wire_free[stream] - now) * 1000.0

    # ---- toxics ----------------------------------------------------------------------

    def find_toxic(self, name: str) -> ToxicSpec:
        return find_toxic(self.toxics, name)

    def add_toxic(self, body: Any) -> ToxicSpec:
        spec = new_toxic(body, UDP_TOXICS, self.toxics,
                         f"invalid toxic type for a udp proxy (known: {', '.join(UDP_TOXICS)})")
        if spec.type == "loss" and spec.attributes["percent"] > 100:
            raise bad_body("percent must be at most 100")
        self.toxics.append(spec)
        return spec

    def update_toxic(self, name: str, body: Any) -> ToxicSpec:
        spec = self.find_toxic(name)
        update_toxic(spec, UDP_TOXICS[spec.type], body)
        return spec

    def remove_toxic(self, name: str) -> None:
        self.toxics.remove(self.find_toxic(name))

    def toxics_json(self) -> list[dict[str, Any]]:
        ordered = sorted(self.toxics, key=lambda spec: STREAMS.index(spec.stream))
        return [spec.to_json() for spec in ordered]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "protocol": "udp",
            "toxics": self.toxics_json(),
        }

    def stats_json(self) -> dict[str, Any]:
        return {"name": self.name, "protocol": "udp",
                **{stream: count.to_json() for stream, count in self.counts.items()}}


class UdpProxyCollection:
    """All UDP proxies of one server, keyed by name."""

    def __init__(self) -> None:
        self.proxies: dict[str, UdpProxy] = {}
        self._lock = asyncio.Lock()

    def __iter__(self) -> Iterator[UdpProxy]:
        return iter(list(self.proxies.values()))

    def get(self, name: str) -> UdpProxy:
        try:
            return self.proxies[name]
        except KeyError:
            raise ApiError("proxy not found", 404) from None

    async def create(self, body: Any) -> UdpProxy:
        if not isinstance(body, dict):
            raise bad_body("expected a JSON object")
        name = _text_field(body, "name", "")
        upstream = _text_field(body, "upstream", "")
        listen = _text_field(body, "listen", "") or DEFAULT_LISTEN
        enabled = body.get("enabled", True)
        if not isinstance(enabled, bool):
            raise bad_body("enabled must be a boolean")
        if not name:
            raise ApiError("missing required field: name", 400)
        if not upstream:
            raise ApiError("missing required field: upstream", 400)
        async with self._lock:
            if name in self.proxies:
                raise ApiError("proxy already exists", 409)
            proxy = UdpProxy(name, listen, upstream)
            if enabled:
                await proxy.start()
            self.proxies[name] = proxy
            return proxy

    async def update(self, name: str, body: Any) -> UdpProxy:
        proxy = self.get(name)
        if not isinstance(body, dict):
            raise bad_body("expected a JSON object")
        enabled = body.get("enabled", proxy.enabled)
        if not isinstance(enabled, bool):
            raise bad_body("enabled must be a boolean")
        async with self._lock:
            if enabled and not proxy.enabled:
                await proxy.start()
            elif not enabled and proxy.enabled:
                proxy.stop()
        return proxy

    def delete(self, name: str) -> None:
        self.get(name).stop()
        del self.proxies[name]

    async def reset(self) -> None:
        async with self._lock:
            for proxy in self:
                if not proxy.enabled:
                    await proxy.start()
                proxy.toxics.clear()

    def close(self) -> None:
        for proxy in self:
            proxy.stop()
        self.proxies.clear()
