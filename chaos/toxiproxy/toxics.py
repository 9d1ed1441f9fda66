"""Toxic types: how each validates its attributes and the stage it puts on a connection.

A toxic lives twice: as a spec (what the API stores and shows) and, on every open
connection it applies to, as a :class:`Stage` in that direction's chain. Stages pass
chunks on to ``self.next`` (another stage or the socket sink). A new toxic type is one
``Stage`` subclass plus one entry in :data:`TOXIC_KINDS`; nothing else changes.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

STREAMS = ("upstream", "downstream")


class InvalidAttributes(ValueError):
    """An attribute value the API must refuse with 400 bad request body."""


class Receiver(Protocol):
    """Whatever comes next in a chain: a stage or the socket sink."""

    def push(self, data: bytes) -> None: ...

    def push_eof(self) -> None: ...


class StageHost(Protocol):
    """What a stage may ask of the direction of the connection it sits in."""

    loop: asyncio.AbstractEventLoop

    def hold(self, nbytes: int) -> None:
        """Count bytes a stage keeps back, so the reader pauses when too much piles up."""

    def unhold(self, nbytes: int) -> None: ...

    def pause_source(self, key: str) -> None:
        """Stop reading the source socket until ``resume_source(key)``."""

    def resume_source(self, key: str) -> None: ...

    def end_connection(self) -> None:
        """Close the whole connection once the EOF pushed after this call reaches the sink."""

    def reset_connection(self) -> None:
        """Abort both sockets with RST, right now."""


class Stage:
    """Base stage: passes everything through. Subclasses override what they change."""

    next: Receiver

    def __init__(self, host: StageHost, attributes: Mapping[str, int]) -> None:
        self.host = host
        self.configure(attributes)

    def configure(self, attributes: Mapping[str, int]) -> None:
        """Take new attribute values; called at creation and on every toxic update."""

    def push(self, data: bytes) -> None:
        self.next.push(data)

    def push_eof(self) -> None:
        self.next.push_eof()

    def detach(self) -> None:
        """The toxic was removed: ``next`` already points past us; hand held data on."""

    def discard(self) -> None:
        """The connection is closing: cancel timers, drop what is held."""


class DelayQueueStage(Stage):
    """A FIFO of chunks each released at its own time, with one timer for the head.

    Pipelining the delays (rather than sleeping per chunk) keeps throughput: a chunk's
    release time depends on its arrival, not on when the previous one left.
    """

    # Bytes this stage may queue before the source socket stops being read; None leaves
    # only the connection-wide limit. A slow link must push back on its sender.
    max_queued: int | None = None

    def __init__(self, host: StageHost, attributes: Mapping[str, int]) -> None:
        self._queue: deque[tuple[float, bytes | None]] = deque()
        self._last_at = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._queued = 0
        self._throttled = False
        self._key = f"stage-{id(self)}"
        super().__init__(host, attributes)

    def _count(self, nbytes: int) -> None:
        """Track queued bytes (negative to release) and pause or resume the source."""
        self._queued += nbytes
        if nbytes > 0:
            self.host.hold(nbytes)
        elif nbytes < 0:
            self.host.unhold(-nbytes)
        limit = self.max_queued
        if limit is None:
            if self._throttled:
                self._throttled = False
                self.host.resume_source(self._key)
        elif not self._throttled and self._queued > limit:
            self._throttled = True
            self.host.pause_source(self._key)
        elif self._throttled and self._queued <= limit // 2:
            self._throttled = False
            self.host.resume_source(self._key)

    def _enqueue(self, data: bytes | None, at: float) -> None:
        """Queue data (None = EOF) for time ``at``; never earlier than what is queued."""
        if at < self._last_at:
            at = self._last_at
        self._last_at = at
        if not self._queue and at <= self.host.loop.time():
            self._emit(data)
            return
        if data is not None:
            self._count(len(data))
        self._queue.append((at, data))
        if self._timer is None:
            self._timer = self.host.loop.call_at(at, self._release)

    def _emit(self, data: bytes | None) -> None:
        if data is None:
            self.next.push_eof()
        else:
            self.next.push(data)

    def _release(self) -> None:
        self._timer = None
        queue = self._queue
        now = self.host.loop.time() + 0.0002
        while queue and queue[0][0] <= now:
            _, data = queue.popleft()
            if data is not None:
                self._count(-len(data))
            self._emit(data)
        if queue and self._timer is None:
            self._timer = self.host.loop.call_at(queue[0][0], self._release)

    def detach(self) -> None:
        self._cancel()
        self.max_queued = None
        while self._queue:
            _, data = self._queue.popleft()
            if data is not None:
                self._count(-len(data))
            self._emit(data)
        self._count(0)

    def discard(self) -> None:
        self._cancel()
        self.max_queued = None
        self._count(-self._queued)
        self._queue.clear()

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class LatencyStage(DelayQueueStage):
    """Delays each chunk by ``latency`` +- ``jitter`` ms after it arrived."""

    def configure(self, attributes: Mapping[str, int]) -> None:
        self.latency_s = attributes["latency"] / 1000.0
        self.jitter_ms = attributes["jitter"]

    def _delay(self) -> float:
        if self.jitter_ms <= 0:
            return self.latency_s
        return self.latency_s + random.uniform(-self.jitter_ms, self.jitter_ms) / 1000.0

    def push(self, data: bytes) -> None:
        self._enqueue(data, self.host.loop.time() + self._delay())

    def push_eof(self) -> None:
        self._enqueue(None, self.host.loop.time() + self._delay())


class BandwidthStage(DelayQueueStage):
    """Lets ``rate`` KB/s (1 KB = 1000 bytes) through, in pieces of at most 100 ms."""

    def configure(self, attributes: Mapping[str, int]) -> None:
        self.bytes_per_s = attributes["rate"] * 1000
        # About 200 ms of traffic queued here at most; beyond that the sender waits.
        self.max_queued = max(64 * 1024, self.bytes_per_s // 5) if self.bytes_per_s else None
        self._count(0)

    def push(self, data: bytes) -> None:
        rate = self.bytes_per_s
        if rate <= 0:
            self._enqueue(data, 0.0)
            return
        at = max(self.host.loop.time(), self._last_at)
        piece = max(1, rate // 10)
        view = memoryview(data)
        for start in range(0, len(data), piece):
            chunk = bytes(view[start : start + piece]) if len(data) > piece else data
            at += len(chunk) / rate
            self._enqueue(chunk, at)

    def push_eof(self) -> None:
        self._enqueue(None, 0.0)


class SlicerStage(DelayQueueStage):
    """Cuts chunks into ``average_size`` +- ``size_variation`` byte slices, ``delay`` us apart."""

    def configure(self, attributes: Mapping[str, int]) -> None:
        self.average_size = attributes["average_size"]
        self.size_variation = min(attributes["size_variation"], max(0, self.average_size - 1))
        self.delay_s = attributes["delay"] / 1_000_000.0

    def push(self, data: bytes) -> None:
        if self.average_size <= 0:
            self._enqueue(data, 0.0)
            return
        at = max(self.host.loop.time(), self._last_at)
        start = 0
        while start < len(data):
            size = self.average_size
            if self.size_variation:
                size += random.randint(-self.size_variation, self.size_variation)
            end = min(len(data), start + max(1, size))
            self._enqueue(data[start:end], at)
            at += self.delay_s
            start = end

    def push_eof(self) -> None:
        self._enqueue(None, 0.0)


class TimeoutStage(Stage):
    """Drops all data; with ``timeout`` > 0 ends the connection after that many ms.

    ``timeout`` 0 is the realistic partition: the connection stays open and silent.
    Removing the toxic ends the connection, as real Toxiproxy does.
    """

    _timer: asyncio.TimerHandle | None = None

    def configure(self, attributes: Mapping[str, int]) -> None:
        self._cancel()
        timeout_ms = attributes["timeout"]
        if timeout_ms > 0:
            self._timer = self.host.loop.call_later(timeout_ms / 1000.0, self._expire)

    def _expire(self) -> None:
        self._timer = None
        self.host.end_connection()
        self.next.push_eof()

    def push(self, data: bytes) -> None:
        pass

    def push_eof(self) -> None:
        pass

    def detach(self) -> None:
        self._cancel()
        self.host.end_connection()
        self.next.push_eof()

    def discard(self) -> None:
        self._cancel()

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class ResetPeerStage(Stage):
    """On the first data (or EOF), waits ``timeout`` ms and resets the connection (RST)."""

    _timer: asyncio.TimerHandle | None = None

    def configure(self, attributes: Mapping[str, int]) -> None:
        self.timeout_s = attributes["timeout"] / 1000.0

    def _arm(self) -> None:
        if self._timer is None:
            self._timer = self.host.loop.call_later(self.timeout_s, self.host.reset_connection)

    def push(self, data: bytes) -> None:
        self._arm()

    def push_eof(self) -> None:
        self._arm()

    def detach(self) -> None:
        self.discard()

    def discard(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class SlowCloseStage(Stage):
    """Holds the EOF back for ``delay`` ms; data passes untouched."""

    _timer: asyncio.TimerHandle | None = None

    def configure(self, attributes: Mapping[str, int]) -> None:
        self.delay_s = attributes["delay"] / 1000.0

    def push_eof(self) -> None:
        if self.delay_s <= 0:
            self.next.push_eof()
        elif self._timer is None:
            self._timer = self.host.loop.call_later(self.delay_s, self._release)

    def _release(self) -> None:
        self._timer = None
        self.next.push_eof()

    def detach(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self.next.push_eof()

    def discard(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class LimitDataStage(Stage):
    """Passes ``bytes`` bytes in this direction, then ends the connection.

    The count survives updates to the toxic, since the stage object is kept.
    """

    transmitted = 0
    _ended = False

    def configure(self, attributes: Mapping[str, int]) -> None:
        self.limit = attributes["bytes"]

    def push(self, data: bytes) -> None:
        if self._ended:
            return
        remaining = self.limit - self.transmitted
        if remaining > 0:
            if len(data) > remaining:
                data = data[:remaining]
            self.transmitted += len(data)
            self.next.push(data)
        if self.limit - self.transmitted <= 0:
            self._ended = True
            self.host.end_connection()
            self.next.push_eof()

    def push_eof(self) -> None:
        if not self._ended:
            self.next.push_eof()


@dataclass(frozen=True)
class ToxicKind:
    """A toxic type: its attribute names with defaults, and the stage that applies it."""

    defaults: Mapping[str, int]
    stage: Callable[[StageHost, Mapping[str, int]], Stage]


TOXIC_KINDS: dict[str, ToxicKind] = {
    "latency": ToxicKind({"latency": 0, "jitter": 0}, LatencyStage),
    "bandwidth": ToxicKind({"rate": 0}, BandwidthStage),
    "slow_close": ToxicKind({"delay": 0}, SlowCloseStage),
    "timeout": ToxicKind({"timeout": 0}, TimeoutStage),
    "reset_peer": ToxicKind({"timeout": 0}, ResetPeerStage),
    "slicer": ToxicKind({"average_size": 0, "size_variation": 0, "delay": 0}, SlicerStage),
    "limit_data": ToxicKind({"bytes": 0}, LimitDataStage),
}


def merge_attributes(
    known: Mapping[str, int], current: Mapping[str, int], given: Any
) -> dict[str, int]:
    """Validate ``given`` against the ``known`` attribute names and lay it over ``current``.

    Unknown attribute names are ignored (real Toxiproxy drops them too); values must
    be non-negative integers.
    """
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise InvalidAttributes("attributes must be an object")
    merged = dict(current)
    for key in known:
        if key not in given:
            continue
        value = given[key]
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidAttributes(f"attribute {key} must be a non-negative integer")
        merged[key] = value
    return merged


@dataclass
class ToxicSpec:
    """A toxic as the API knows it; connections build their stages from it."""

    name: str
    type: str
    stream: str
    toxicity: float
    attributes: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": self.toxicity,
            "attributes": dict(self.attributes),
        }

    def make_stage(self, host: StageHost) -> Stage:
        return TOXIC_KINDS[self.type].stage(host, self.attributes)
