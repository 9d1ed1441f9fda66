"""Asyncio driver of the core: UDP and TCP transport, timers and the wall clock.

Like memberlist, the node listens on UDP and TCP on the same gossip address and port,
sends probes, acks, indirect probes and gossip (pushed, or pulled: pull requests too) as
datagrams from its gossip socket, and state sync (push-pull, Merkle) and anything larger
than one datagram (``MAX_DATAGRAM_BYTES``) over TCP. The core does not know: the runtime picks the
transport per message.

Each directed link (a -> b) carries only a's messages: a dials b lazily and keeps one
outbound connection; replies go back over the replier's own outbound connection (or as
its own datagram), never over the inbound socket. That is what lets the harness cut
single directions with a proxy per directed link.

Dial maps, per transport: ``routes`` (TCP) and ``udp_routes`` (datagrams). A peer's
datagrams go to its UDP route; a node with a TCP dial map but no UDP route for a peer
sends that peer everything over TCP (a harness that routes only TCP must see every
message in its proxies), and a node with no dial map at all sends datagrams to the
address a peer advertises.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from gossipcert.reference_node.api import (
    change_keyring,
    core_metrics,
    keyring_view,
    split_address,
)
from gossipcert.reference_node.core.codec import encode_message, encode_update
from gossipcert.reference_node.core.effects import Effect, Observed, Persist, SendMessage
from gossipcert.reference_node.core.keyring import NONCE_BYTES, Keyring, ReplayGuard, encode_key
from gossipcert.reference_node.core.messages import Message
from gossipcert.reference_node.core.node import Node
from gossipcert.reference_node.framing import (
    DATAGRAM_KINDS,
    MAX_DATAGRAM_BYTES,
    FrameError,
    InboundStream,
    decode_datagram,
    encode_datagram,
    encode_frame,
)
from gossipcert.reference_node.metrics import Metrics
from gossipcert.reference_node.persist import (
    COMPACT_EVERY,
    DataDir,
    PersistError,
    save_keyring_file,
)

log = logging.getLogger("reference_node")

T = TypeVar("T")

WRITE_BUFFER_LIMIT = 1024 * 1024
"""Above this many unsent bytes on a link, new messages are dropped, not queued."""
PENDING_LIMIT = 256 * 1024
"""Bytes held for a link while its connection is being opened."""
CONNECT_TIMEOUT_S = 1.0
RECONNECT_BACKOFF_S = 0.1
MAX_TIMER_DELAY_S = 1.0


def now_ms() -> int:
    """Wall clock: events' `at_ms` are compared with the harness clock on this host."""
    return int(time.time() * 1000)


class _OutboundProtocol(asyncio.Protocol):
    def __init__(self, link: PeerLink) -> None:
        self._link = link

    def data_received(self, data: bytes) -> None:
        pass  # peers never answer on our outbound connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._link.lost()


class PeerLink:
    """One lazily opened outbound connection to a dial address."""

    def __init__(self, address: str, metrics: Metrics) -> None:
        self.address = address
        self._metrics = metrics
        self._transport: asyncio.Transport | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._pending: list[tuple[bytes, str]] = []
        self._pending_bytes = 0
        self._retry_at = 0.0

    @property
    def buffered_bytes(self) -> int:
        """Bytes written but not yet on the wire, plus those waiting for a connection."""
        transport = self._transport
        written = transport.get_write_buffer_size() if transport is not None else 0
        return written + self._pending_bytes

    def send(self, frame: bytes, kind: str) -> str | None:
        """Write or queue a frame without blocking; the drop reason when it could not."""
        transport = self._transport
        if transport is not None and not transport.is_closing():
            if transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
                return "send_buffer_full"
            transport.write(frame)
            self._metrics.sent(kind, len(frame))
            return None
        loop = asyncio.get_running_loop()
        if loop.time() < self._retry_at:
            return "connect_failed"
        if self._pending_bytes + len(frame) > PENDING_LIMIT:
            return "send_buffer_full"
        self._pending.append((frame, kind))
        self._pending_bytes += len(frame)
        if self._connecting is None:
            self._connecting = loop.create_task(self._connect())
        return None

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            host, port = split_address(self.address)
            transport, _ = await asyncio.wait_for(
                loop.create_connection(lambda: _OutboundProtocol(self), host, port),
                CONNECT_TIMEOUT_S,
            )
        except (OSError, ValueError, TimeoutError) as exc:
            log.debug("cannot connect to %s: %s", self.address, exc)
            self._metrics.connect_failures += 1
            self._metrics.drop("connect_failed", len(self._pending))
            self._retry_at = loop.time() + RECONNECT_BACKOFF_S
            self._clear_pending()
            return
        finally:
            self._connecting = None
        assert isinstance(transport, asyncio.Transport)
        self._metrics.connections_opened += 1
        self._transport = transport
        pending = self._pending
        self._clear_pending()
        for frame, kind in pending:
            transport.write(frame)
            self._metrics.sent(kind, len(frame))

    def _clear_pending(self) -> None:
        self._pending = []
        self._pending_bytes = 0

    def lost(self) -> None:
        self._transport = None

    def close(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
        if self._transport is not None:
            self._transport.abort()
            self._transport = None


class _InboundProtocol(asyncio.Protocol):
    def __init__(self, runtime: GossipRuntime) -> None:
        self._runtime = runtime
        self._stream = InboundStream(lambda: runtime.keyring, runtime.replay_guard)
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._runtime.inbound.add(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._runtime.inbound.discard(self._transport)
        if self._stream.truncated:
            self._runtime.metrics.drop("truncated")

    def data_received(self, data: bytes) -> None:
        # Decoding happens here, in the I/O callback, so a pending ack is processed
        # before a timer that fires in the same loop iteration.
        inbound = self._stream.feed(data, now_ms())
        for reason in inbound.dropped:
            self._runtime.metrics.drop(reason)
            log.info("dropped an inbound frame: %s", reason)
        for message, size in inbound.messages:
            self._runtime.deliver(message, size)
        if inbound.close and self._transport is not None:
            log.info("closing gossip connection: broken framing")
            self._transport.close()


class _DatagramProtocol(asyncio.DatagramProtocol):
    """The gossip socket's UDP side: every datagram in is one message, or a drop."""

    def __init__(self, runtime: GossipRuntime) -> None:
        self._runtime = runtime

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        runtime = self._runtime
        try:
            message, reason = decode_datagram(data, runtime.keyring, runtime.replay_guard,
                                              now_ms())
        except Exception:  # whatever arrives on the port, the node stays up
            message, reason = None, "malformed"
        if message is None:
            runtime.metrics.drop(reason or "malformed")
            runtime.metrics.datagrams_dropped += 1
            log.info("dropped an inbound datagram from %s: %s", addr, reason)
            return
        runtime.metrics.datagrams_received += 1
        runtime.deliver(message, len(data))

    def error_received(self, exc: Exception) -> None:
        pass  # an ICMP unreachable for an earlier datagram: UDP loses it, so do we


class GossipRuntime:
    """Owns the listeners (TCP and UDP on one port), the links and the core's timer."""

    def __init__(
        self,
        routes: dict[str, str],
        metrics: Metrics | None = None,
        keyring: Keyring | None = None,
        udp_routes: dict[str, str] | None = None,
    ) -> None:
        self.routes = dict(routes)
        self.udp_routes = dict(udp_routes or {})
        self._udp: asyncio.DatagramTransport | None = None
        self.metrics = metrics or Metrics()
        # None: frames travel as plain JSON. Shared by every connection, so keyring
        # changes from the control API apply to the next frame in either direction.
        self.keyring = keyring
        self.keyring_file: str | None = None
        self.replay_guard = ReplayGuard()
        self.data_dir: DataDir | None = None
        self.inbound: set[asyncio.Transport] = set()
        self._links: dict[str, PeerLink] = {}
        self._server: asyncio.Server | None = None
        self._node: Node | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_deadline: int | None = None

    @property
    def node(self) -> Node:
        assert self._node is not None, "runtime not started"
        return self._node

    async def listen(self, host: str, port: int) -> str:
        """Bind the gossip listeners, TCP then UDP on the same port; returns the bound
        HOST:PORT."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _InboundProtocol(self), host, port)
        bound_port = self._server.sockets[0].getsockname()[1]
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _DatagramProtocol(self), local_addr=(host, bound_port))
        except OSError:
            self._server.close()
            raise
        self._udp = transport
        return f"{host}:{bound_port}"

    def start(self, node: Node) -> None:
        self._node = node
        self._after_input()

    def call(self, action: Callable[[int], T]) -> T:
        """Run a client call on the core with the current time, then flush effects."""
        result = action(now_ms())
        try:
            self._flush()  # raises PersistError when the call could not be made durable
        finally:
            self._reschedule()
        return result

    def deliver(self, message: Message, size: int) -> None:
        if self._node is None:
            return
        self.metrics.received(message.kind, size)
        log.debug("recv %s from %s", message.kind, message.sender)
        try:
            self._node.receive(message, now_ms())
        except Exception:  # a core bug must not take the node down
            log.exception("core failed on a %s from %s", message.kind, message.sender)
        try:
            self._after_input()
        except PersistError as exc:
            log.error("%s", exc)
            self._reschedule()

    def keyring_view(self) -> dict[str, Any]:
        return keyring_view(self.keyring)

    def keyring_change(self, op: str, key_text: str) -> dict[str, Any]:
        """install | use | remove one key; KeyringError says why not. With a keyring
        file the change is written back, as Serf does."""
        change_keyring(self.keyring, op, key_text)
        if self.keyring_file is not None and self.keyring is not None:
            save_keyring_file(self.keyring_file, [encode_key(k) for k in self.keyring.keys])
        return self.keyring_view()

    def metrics_snapshot(self) -> dict[str, Any]:
        """Traffic counters plus the core's rounds, queues and health."""
        snapshot = self.metrics.snapshot()
        node = self._node
        if node is not None:
            snapshot.update(
                core_metrics(
                    node,
                    outbound_bytes=sum(link.buffered_bytes for link in self._links.values()),
                    outbound_links=len(self._links),
                    replay_cache=len(self.replay_guard),
                )
            )
        return snapshot

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.data_dir is not None and self._node is not None:
            try:
                self.data_dir.compact(self._node.snapshot())
            except OSError as exc:
                log.error("cannot write the final snapshot: %s", exc)
            self.data_dir.close()
        if self._server is not None:
            self._server.close()
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        for transport in list(self.inbound):
            transport.abort()
        for link in self._links.values():
            link.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    # ---- internals -------------------------------------------------------------------

    def _after_input(self) -> None:
        self._flush()
        self._reschedule()

    def _flush(self) -> None:
        effects = self.node.take_effects()
        # Durability before anything leaves: a write is acknowledged (and a higher
        # incarnation announced) only once it is on disk.
        self._persist(effects)
        for effect in effects:
            if isinstance(effect, SendMessage):
                self._send(effect)
            elif isinstance(effect, Observed):
                log.debug("event %s", effect.event)

    def _persist(self, effects: list[Effect]) -> None:
        data_dir = self.data_dir
        if data_dir is None:
            return
        try:
            data_dir.save_incarnation(self.node.incarnation)
            data_dir.append([encode_update(e.update) for e in effects if isinstance(e, Persist)])
            if data_dir.log_records >= COMPACT_EVERY:
                data_dir.compact(self.node.snapshot())
        except OSError as exc:
            raise PersistError(f"cannot write data dir {data_dir.path}: {exc}") from exc

    def datagram_dial(self, effect: SendMessage) -> str | None:
        """Where a message goes as a datagram, or None when it goes over TCP: only the
        kinds memberlist sends as datagrams, to the peer's UDP route, or with no dial map
        at all to the address it advertises."""
        if effect.message.kind not in DATAGRAM_KINDS or self._udp is None:
            return None
        if effect.to_id is not None and effect.to_id in self.udp_routes:
            return self.udp_routes[effect.to_id]
        if not self.routes and not self.udp_routes:
            return effect.address
        return None

    def _send(self, effect: SendMessage) -> None:
        dial_udp = self.datagram_dial(effect)
        if dial_udp is not None and self._send_datagram(effect, dial_udp):
            return
        dial = self.routes.get(effect.to_id, effect.address) if effect.to_id else effect.address
        try:
            frame = encode_frame(encode_message(effect.message), self._seal)
        except (FrameError, TypeError, ValueError) as exc:
            log.warning("dropping unencodable %s: %s", effect.message.kind, exc)
            self.metrics.drop("unencodable")
            return
        log.debug("send %s to %s via %s", effect.message.kind, effect.to_id, dial)
        link = self._links.get(dial)
        if link is None:
            link = self._links[dial] = PeerLink(dial, self.metrics)
        reason = link.send(frame, effect.message.kind)
        if reason is not None:
            self.metrics.drop(reason)

    def _send_datagram(self, effect: SendMessage, dial: str) -> bool:
        """Send one message as one datagram from the gossip socket; False when it does
        not fit one (``MAX_DATAGRAM_BYTES`` sealed), so it goes over TCP instead."""
        kind = effect.message.kind
        try:
            payload = encode_datagram(encode_message(effect.message), self._seal)
            host, port = split_address(dial)
        except (TypeError, ValueError) as exc:
            log.warning("dropping unencodable %s: %s", kind, exc)
            self.metrics.drop("unencodable")
            return True
        if len(payload) > MAX_DATAGRAM_BYTES:
            return False
        assert self._udp is not None
        log.debug("send %s to %s via udp %s", kind, effect.to_id, dial)
        try:
            self._udp.sendto(payload, (host, port))
        except OSError as exc:  # no route, a full buffer: a datagram is lost like that
            log.debug("datagram to %s lost: %s", dial, exc)
            self.metrics.drop("send_buffer_full")
            return True
        self.metrics.datagrams_sent += 1
        self.metrics.sent(kind, len(payload))
        return True

    def _seal(self, body: bytes) -> bytes:
        keyring = self.keyring
        if keyring is None:
            return body
        return keyring.seal(body, os.urandom(NONCE_BYTES), now_ms())

    def _reschedule(self) -> None:
        deadline = self.node.next_deadline_ms()
        if self._timer is not None:
            if self._timer_deadline == deadline:
                return
            self._timer.cancel()
        # +1 ms so the timer never fires just before the deadline it waits for.
        delay = min(MAX_TIMER_DELAY_S, max(0.0, (deadline - now_ms() + 1) / 1000))
        self._timer_deadline = deadline
        self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_deadline = None
        try:
            self.node.tick(now_ms())
        except Exception:
            log.exception("core failed on tick")
        try:
            self._after_input()
        except PersistError as exc:
            log.error("%s", exc)
            self._reschedule()
