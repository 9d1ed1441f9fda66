"""TCP plumbing of one proxied connection: two sockets and a chain of stages per direction.

asyncio protocols rather than streams: with no toxic on a direction, ``data_received``
hands the chunk straight to the other socket's ``write`` (the fast path). With toxics,
the chunk enters the first stage and the last stage writes it. Toxic changes relink
the chain of open connections in place, so they apply at once without losing bytes.

Every read is counted where it enters the proxy (:class:`StreamCount`, one per direction
of a proxy, shared by all its connections): what the sender put on the link, whether
toxics then delay or drop it. Two integer increments per read, on the fast path too.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from collections.abc import Callable, Iterable
from typing import Protocol, cast

from gossipcert.chaos.toxiproxy.toxics import Receiver, Stage, ToxicSpec

# Pause the reader when stages hold this much back (latency on a fast stream), resume
# below the low mark: 100 ms latency at ~100 MB/s needs about 10 MB in flight.
HOLD_HIGH = 32 * 1024 * 1024
HOLD_LOW = 8 * 1024 * 1024
# Kernel-side writes are retried by asyncio; a larger user-space buffer before pausing
# the other side keeps bulk transfers from ping-ponging on pause/resume.
WRITE_HIGH = 1024 * 1024
WRITE_LOW = 256 * 1024


def split_hostport(address: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` to a pair; raises ValueError when malformed."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"address {address!r} is not HOST:PORT")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"port out of range in {address!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, port


def join_hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def bind_socket(address: str) -> socket.socket:
    """A listening, non-blocking socket on ``address``; the real port is in getsockname().

    Raises ValueError for a malformed address, OSError when it cannot be bound. Binding
    one socket only (IPv4 first) matters for port 0: two families would get two ports.
    """
    host, port = split_hostport(address)
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    family, socktype, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, socktype, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        sock.listen(1024)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def socket_address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return join_hostport(host, port)


class StreamCount:
    """What entered one direction of a proxy from its sender, since the proxy was made.

    ``chunks`` counts reads from the sender's socket. TCP keeps no message boundaries, so
    a chunk is not a message: writes made close together may arrive as one read, and a
    large message as several. Writes further apart than the relay's own latency each
    make a read of their own, so chunks count a sender's separate sends, which is what
    a rate check needs.
    """

    __slots__ = ("chunks", "bytes")

    def __init__(self) -> None:
        self.chunks = 0
        self.bytes = 0

    def to_json(self) -> dict[str, int]:
        return {"chunks": self.chunks, "bytes": self.bytes}


class LinkTraffic:
    """The counters of one TCP proxy: connections accepted, and each direction's reads.

    ``upstream`` is what clients sent (towards the upstream), ``downstream`` what the
    upstream sent back on the same connections. Never reset while the proxy exists
    (disabling it or ``POST /reset`` keep them): readers take differences.
    """

    __slots__ = ("connections", "upstream", "downstream")

    def __init__(self) -> None:
        self.connections = 0
        self.upstream = StreamCount()
        self.downstream = StreamCount()

    def to_json(self) -> dict[str, object]:
        return {"connections": self.connections, "upstream": self.upstream.to_json(),
                "downstream": self.downstream.to_json()}


# Where an endpoint counts before its connection is set up (nothing is read then).
_UNCOUNTED = StreamCount()


class LinkOwner(Protocol):
    """The proxy a connection belongs to."""

    upstream: str
    traffic: LinkTraffic

    @property
    def toxic_specs(self) -> Iterable[ToxicSpec]: ...

    def forget(self, conn: Connection) -> None: ...


def _ignore_data(data: bytes) -> None:
    pass


def _ignore_eof() -> None:
    pass


class Endpoint(asyncio.Protocol):
    """One socket of a connection; reads go to ``forward``, set by the pipe it feeds."""

    transport: asyncio.Transport

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.forward: Callable[[bytes], None] = _ignore_data
        self.forward_eof: Callable[[], None] = _ignore_eof
        self.peer: Endpoint | None = None
        self.count = _UNCOUNTED
        self._blocks: set[str] = set()
        # What arrived while reading was paused: CPython before 3.11.3 (Debian bookworm's
        # 3.11.2, the image's) starts reading after ``connection_made`` even when it paused
        # the transport there, so a client's first bytes could come before the upstream
        # exists. They wait here for the last block to go.
        self._held: list[bytes] = []
        self._held_eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(WRITE_HIGH, WRITE_LOW)
        # Nothing is read until both sockets and both chains exist.
        self.block("setup")
        self.conn.endpoint_made(self)

    def data_received(self, data: bytes) -> None:
        if self._blocks or self._held:
            self._held.append(data)
            return
        self._deliver(data)

    def _deliver(self, data: bytes) -> None:
        count = self.count
        count.chunks += 1
        count.bytes += len(data)
        self.forward(data)

    def eof_received(self) -> bool:
        if self._blocks or self._held:
            self._held_eof = True
        else:
            self.forward_eof()
        return True  # keep the socket for the other direction (half-close)

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.endpoint_lost()

    def pause_writing(self) -> None:
        if self.peer is not None:
            self.peer.block("peer-full")

    def resume_writing(self) -> None:
        if self.peer is not None:
            self.peer.unblock("peer-full")

    def block(self, reason: str) -> None:
        if not self._blocks:
            self.transport.pause_reading()
        self._blocks.add(reason)

    def unblock(self, reason: str) -> None:
        if reason not in self._blocks:
            return
        self._blocks.discard(reason)
        while self._held and not self._blocks:
            self._deliver(self._held.pop(0))
        if self._held_eof and not self._held and not self._blocks:
            self._held_eof = False
            self.forward_eof()
        if not self._blocks:
            self.transport.resume_reading()


class Sink:
    """The end of a chain: writes to the destination socket."""

    def __init__(self, pipe: Pipe) -> None:
        self.pipe = pipe
        self.eof_sent = False

    def push(self, data: bytes) -> None:
        transport = self.pipe.dest.transport
        if not self.eof_sent and not transport.is_closing():
            transport.write(data)

    def push_eof(self) -> None:
        self.eof_sent = True
        self.pipe.conn.direction_done(self.pipe)


class Pipe:
    """One direction of one connection: source socket -> stages -> destination socket."""

    def __init__(self, conn: Connection, direction: str, source: Endpoint, dest: Endpoint):
        self.conn = conn
        self.loop = conn.loop
        self.direction = direction
        self.source = source
        self.dest = dest
        self.sink = Sink(self)
        self.order: list[str] = []
        self.stages: dict[str, Stage | None] = {}
        self.held = 0
        self.close_on_eof = False

    # StageHost
    def hold(self, nbytes: int) -> None:
        self.held += nbytes
        if self.held > HOLD_HIGH:
            self.source.block("held")

    def unhold(self, nbytes: int) -> None:
        self.held -= nbytes
        if self.held < HOLD_LOW:
            self.source.unblock("held")

    def pause_source(self, key: str) -> None:
        self.source.block(key)

    def resume_source(self, key: str) -> None:
        self.source.unblock(key)

    def end_connection(self) -> None:
        self.close_on_eof = True

    def reset_connection(self) -> None:
        self.conn.reset()

    # Toxic changes
    def _roll(self, spec: ToxicSpec) -> Stage | None:
        """Toxicity is the chance that this connection gets the toxic at all."""
        if spec.toxicity >= 1.0 or random.random() < spec.toxicity:
            return spec.make_stage(self)
        return None

    def add_toxic(self, spec: ToxicSpec) -> None:
        self.order.append(spec.name)
        self.stages[spec.name] = self._roll(spec)
        self.relink()

    def remove_toxic(self, name: str) -> None:
        if name not in self.stages:
            return
        stage = self.stages.pop(name)
        self.order.remove(name)
        self.relink()
        if stage is not None:
            stage.detach()

    def update_toxic(self, spec: ToxicSpec) -> None:
        if spec.name not in self.stages:
            return
        old = self.stages[spec.name]
        if old is not None and (spec.toxicity >= 1.0 or random.random() < spec.toxicity):
            old.configure(spec.attributes)
            return
        self.stages[spec.name] = None if old is not None else self._roll(spec)
        self.relink()
        if old is not None:
            old.detach()

    def relink(self) -> None:
        """Point each active stage at the next one; an empty chain is the fast path."""
        nxt: Receiver = self.sink
        for name in reversed(self.order):
            stage = self.stages[name]
            if stage is not None:
                stage.next = nxt
                nxt = stage
        if nxt is self.sink:
            self.source.forward = self.dest.transport.write
        else:
            self.source.forward = nxt.push
        self.source.forward_eof = nxt.push_eof

    def discard(self) -> None:
        self.source.forward = _ignore_data
        self.source.forward_eof = _ignore_eof
        for stage in self.stages.values():
            if stage is not None:
                stage.discard()
        self.stages.clear()
        self.order.clear()


class Connection:
    """A client connection accepted by a proxy and its connection to the upstream."""

    def __init__(self, owner: LinkOwner, loop: asyncio.AbstractEventLoop) -> None:
        self.owner = owner
        self.loop = loop
        self.client = Endpoint(self)
        self.upstream: Endpoint | None = None
        self.pipes: dict[str, Pipe] = {}
        self.closed = False
        self._finished: set[str] = set()
        self._dial_task: asyncio.Task[None] | None = None

    def endpoint_made(self, endpoint: Endpoint) -> None:
        if endpoint is self.client:
            self._dial_task = self.loop.create_task(self._dial())

    async def _dial(self) -> None:
        try:
            host, port = split_hostport(self.owner.upstream)
            _, upstream = await self.loop.create_connection(
                lambda: Endpoint(self), host or "127.0.0.1", port
            )
        except (OSError, ValueError):
            self.close()
            return
        if self.closed:
            upstream.transport.abort()
            return
        self.upstream = upstream
        client = self.client
        client.peer, upstream.peer = upstream, client
        client.count = self.owner.traffic.upstream
        upstream.count = self.owner.traffic.downstream
        self.pipes = {
            "upstream": Pipe(self, "upstream", client, upstream),
            "downstream": Pipe(self, "downstream", upstream, client),
        }
        for pipe in self.pipes.values():
            pipe.relink()
        for spec in self.owner.toxic_specs:
            self.pipes[spec.stream].add_toxic(spec)
        client.unblock("setup")
        upstream.unblock("setup")

    def add_toxic(self, spec: ToxicSpec) -> None:
        if self.pipes:
            self.pipes[spec.stream].add_toxic(spec)

    def remove_toxic(self, spec: ToxicSpec) -> None:
        if self.pipes:
            self.pipes[spec.stream].remove_toxic(spec.name)

    def update_toxic(self, spec: ToxicSpec) -> None:
        if self.pipes:
            self.pipes[spec.stream].update_toxic(spec)

    def direction_done(self, pipe: Pipe) -> None:
        """An EOF reached the end of a chain: half-close, or close when asked to."""
        if self.closed:
            return
        if pipe.close_on_eof:
            self.close()
            return
        if pipe.direction in self._finished:
            return
        self._finished.add(pipe.direction)
        with contextlib.suppress(OSError, RuntimeError):
            if pipe.dest.transport.can_write_eof():
                pipe.dest.transport.write_eof()
        if len(self._finished) == 2:
            self.close()

    def endpoint_lost(self) -> None:
        self.close()

    def _endpoints(self) -> list[Endpoint]:
        pair = (self.client, self.upstream)
        return [e for e in pair if e is not None and hasattr(e, "transport")]

    def _shut(self) -> list[Endpoint]:
        if self.closed:
            return []
        self.closed = True
        for pipe in self.pipes.values():
            pipe.discard()
        task = self._dial_task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
        self.owner.forget(self)
        return self._endpoints()

    def close(self) -> None:
        """Close both sockets after flushing what is already written (FIN)."""
        for endpoint in self._shut():
            endpoint.transport.close()

    def abort(self) -> None:
        """Drop both sockets now, unsent data lost: a proxy going down looks like a crash."""
        for endpoint in self._shut():
            endpoint.transport.abort()

    def reset(self) -> None:
        """Abort both sockets with RST (SO_LINGER 0), as a peer reset would."""
        endpoints = self._shut()
        for endpoint in endpoints:
            sock = endpoint.transport.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            endpoint.transport.abort()
