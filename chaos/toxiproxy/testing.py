"""Tiny TCP upstreams for tests of the link plane: an echo server and a greeter.

Thread-based and blocking on purpose: they must not share the event loop of the
server they sit behind, or a stalled loop would hide itself.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType
from typing import Self


class _TcpServer:
    """Accepts on a free loopback port; each connection runs ``handle`` in a thread."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self.port: int = self._sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.accepted = 0
        self._conns: list[socket.socket] = []
        self._closed = False
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.accepted += 1
            self._conns.append(conn)
            threading.Thread(target=self._guarded, args=(conn,), daemon=True).start()

    def _guarded(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            self.handle(conn)
        with contextlib.suppress(OSError):
            conn.close()

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class EchoServer(_TcpServer):
    """Sends back every byte; on the client's EOF, half-closes after the last byte."""

    def handle(self, conn: socket.socket) -> None:
        while True:
            data = conn.recv(1 << 16)
            if not data:
                conn.shutdown(socket.SHUT_WR)
                return
            conn.sendall(data)


class GreeterServer(_TcpServer):
    """Sends ``greeting`` and closes at once: for tests of how a close travels."""

    def __init__(self, greeting: bytes = b"hello\n") -> None:
        super().__init__()
        self.greeting = greeting

    def handle(self, conn: socket.socket) -> None:
        conn.sendall(self.greeting)


def connect(address: str, timeout_s: float = 5.0) -> socket.socket:
    """A blocking client socket to HOST:PORT with TCP_NODELAY and a timeout."""
    host, _, port = address.rpartition(":")
    sock = socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    """Read ``size`` bytes; raises EOFError if the peer closes first."""
    chunks = []
    remaining = size
    while remaining:
        chunk = sock.recv(min(remaining, 1 << 20))
        if not chunk:
            raise EOFError(f"closed after {size - remaining} of {size} bytes")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
