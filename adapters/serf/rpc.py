"""A small client of Serf's RPC protocol (msgpack over TCP, the agent's ``-rpc-addr``).

Every request is a header ``{"Command", "Seq"}`` followed by a body; every response a
header ``{"Seq", "Error"}`` followed by a body for the commands that have one. A
``stream`` request keeps answering with the same ``Seq``, one record per event. One
reader thread owns the socket's input and hands each response to the call waiting on
its sequence number, and each streamed record to the stream's callback.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any

import msgpack

__all__ = ["RPCError", "SerfRPC"]

# Commands whose response header is followed by a body (the others answer a header only).
_WITH_BODY = frozenset({"join", "members", "members-filtered", "stats", "list-keys",
                        "install-key", "use-key", "remove-key", "get-coordinate"})


class RPCError(Exception):
    """The agent refused a request, or the connection to it broke."""


class _Pending:
    def __init__(self, command: str) -> None:
        self.command = command
        self.done = threading.Event()
        self.error = ""
        self.body: Any = None


class SerfRPC:
    """One connection to one agent; thread-safe calls, at most one event stream."""

    def __init__(self, address: tuple[str, int], timeout_s: float = 5.0) -> None:
        self.timeout_s = timeout_s
        self._sock = socket.create_connection(address, timeout=timeout_s)
        self._sock.settimeout(None)
        self._unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
        self._send_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._seq = 0
        self._pending: dict[int, _Pending] = {}
        self._streams: dict[int, Callable[[dict[str, Any]], None]] = {}
        self._stream_acked: set[int] = set()
        self.closed = threading.Event()
        self._reader = threading.Thread(target=self._read_loop, name="serf-rpc", daemon=True)
        self._reader.start()
        self.call("handshake", {"Version": 1})

    # ---- requests ----------------------------------------------------------------------

    def call(self, command: str, body: dict[str, Any] | None = None,
             timeout_s: float | None = None) -> Any:
        """Send one request and wait for its response body (None for header-only ones)."""
        pending = _Pending(command)
        seq = self._send(command, body, pending=pending)
        if not pending.done.wait(timeout_s if timeout_s is not None else self.timeout_s):
            with self._state_lock:
                self._pending.pop(seq, None)
            raise RPCError(f"serf rpc {command}: no answer within "
                           f"{timeout_s or self.timeout_s:g} s")
        if pending.error:
            raise RPCError(f"serf rpc {command}: {pending.error}")
        return pending.body

    def stream(self, event_filter: str, on_event: Callable[[dict[str, Any]], None]) -> None:
        """Subscribe to events (``*``: every member and user event); ``on_event`` runs on
        the reader thread for each record, in the agent's order."""
        pending = _Pending("stream")
        seq = self._send("stream", {"Type": event_filter}, pending=pending,
                         on_event=on_event)
        if not pending.done.wait(self.timeout_s):
            raise RPCError("serf rpc stream: no answer")
        if pending.error:
            with self._state_lock:
                self._streams.pop(seq, None)
            raise RPCError(f"serf rpc stream: {pending.error}")

    def close(self) -> None:
        self.closed.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()

    def _send(self, command: str, body: dict[str, Any] | None, *, pending: _Pending,
              on_event: Callable[[dict[str, Any]], None] | None = None) -> int:
        if self.closed.is_set():
            raise RPCError(f"serf rpc {command}: the connection to the agent is closed")
        with self._send_lock:
            with self._state_lock:
                seq = self._seq
                self._seq += 1
                self._pending[seq] = pending
                if on_event is not None:
                    self._streams[seq] = on_event
            data = msgpack.packb({"Command": command, "Seq": seq})
            if body is not None:
                data += msgpack.packb(body, use_bin_type=True)
            try:
                self._sock.sendall(data)
            except OSError as exc:
                raise RPCError(f"serf rpc {command}: {exc}") from None
        return seq

    # ---- responses ---------------------------------------------------------------------

    def _read_loop(self) -> None:
        try:
            self._read_all()
        except (OSError, ValueError, msgpack.UnpackException):
            pass
        finally:
            self.closed.set()
            with self._state_lock:
                waiting = list(self._pending.values())
                self._pending.clear()
            for pending in waiting:
                pending.error = pending.error or "the connection to the agent closed"
                pending.done.set()

    def _objects(self) -> Any:
        while True:
            yield from self._unpacker
            chunk = self._sock.recv(65536)
            if not chunk:
                return
            self._unpacker.feed(chunk)

    def _read_all(self) -> None:
        objects = self._objects()
        for header in objects:
            if not isinstance(header, dict) or "Seq" not in header:
                raise ValueError(f"unexpected rpc record {header!r}")
            seq, error = int(header["Seq"]), str(header.get("Error") or "")
            with self._state_lock:
                on_event = self._streams.get(seq)
                first = seq not in self._stream_acked
                pending = self._pending.get(seq)
            if on_event is not None and not first:
                record = next(objects)  # a streamed event follows every later header
                on_event(record)
                continue
            if on_event is not None:
                with self._state_lock:
                    self._stream_acked.add(seq)
                    self._pending.pop(seq, None)
                if pending is not None:
                    pending.error = error
                    pending.done.set()
                continue
            body = None
            if pending is not None and pending.command in _WITH_BODY:
                body = next(objects)  # sent with an error too (join says how many it reached)
            with self._state_lock:
                self._pending.pop(seq, None)
            if pending is not None:
                pending.body = body
                pending.error = error
                pending.done.set()
