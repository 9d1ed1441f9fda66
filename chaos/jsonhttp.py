"""One small JSON-over-HTTP client, the base of every client of the harness: the control
client, the Toxiproxy client, the swarm fault agent's client, and the Docker engine's
socket (a Unix socket: :meth:`JsonHttpClient.unix`).

It owns what they need and nothing more: one keep-alive connection per client (a
partition of a 10-node cluster is ~180 calls), timeouts, one fresh try when a kept-alive
connection turns out closed, JSON in and out, and the shape of the errors: a transport
failure is a :class:`TransportError` that says whether the request went out, an error
status becomes a :class:`HttpStatusError` (or the subclass's own) with the server's
message. Subclasses are thin: the paths of their API and what an answer means.

It lives in ``chaos`` because ``chaos`` imports nothing from ``harness`` while the harness
may import ``chaos``: the one place all of them can share it.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, Self

__all__ = [
    "HttpStatusError", "JsonHttpClient", "JsonResponse", "TransportError", "UnixHTTPConnection",
]

# A kept-alive connection the server closed meanwhile shows up as one of these: worth one
# fresh try. A refused connection or a timeout is an answer in itself.
RETRYABLE = (
    http.client.RemoteDisconnected,
    http.client.CannotSendRequest,
    http.client.BadStatusLine,
    BrokenPipeError,
    ConnectionResetError,
)


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a Unix socket (the Docker engine's), for ``localhost``."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class TransportError(OSError):
    """No answer came: the connection was refused, broke or timed out.

    ``sent`` says whether the request had gone out, so whether the server may have acted
    on it; ``cause`` is the exception underneath.
    """

    def __init__(self, cause: BaseException, *, sent: bool) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause
        self.sent = sent

    @property
    def timed_out(self) -> bool:
        return isinstance(self.cause, TimeoutError)


class HttpStatusError(Exception):
    """The server answered with an error status; ``message`` is what its body said."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


@dataclass(frozen=True)
class JsonResponse:
    """One answer: its status, its body decoded as JSON (``data``, None when the body is
    empty or not JSON) and as text."""

    status: int
    data: Any
    text: str
    is_json: bool

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class JsonHttpClient:
    """A client of one HTTP/JSON server at ``host:port`` (paths under ``prefix``).

    Thread-safe: one call at a time goes over the connection.
    """

    # What an error status raises from :meth:`call`, and the body fields that carry the
    # server's message, most telling first.
    status_error: ClassVar[type[HttpStatusError]] = HttpStatusError
    message_fields: ClassVar[tuple[str, ...]] = ("message", "error")

    def __init__(self, host: str, port: int, timeout_s: float, prefix: str = "") -> None:
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self.prefix = prefix.rstrip("/")
        self.unix_socket: str | None = None
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()

    @classmethod
    def unix(cls, path: str, timeout_s: float) -> Self:
        """A client of the server on the Unix socket at ``path``."""
        client = cls("localhost", 80, timeout_s)
        client.unix_socket = path
        return client

    @property
    def address(self) -> str:
        return self.unix_socket or f"{self.host}:{self.port}"

    def exchange(
        self, method: str, path: str, body: Any = None, timeout_s: float | None = None
    ) -> JsonResponse:
        """One request, whatever status it gets; :class:`TransportError` when none came."""
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        timeout = timeout_s or self.timeout_s
        with self._lock:
            for attempt in (1, 2):
                conn = self._connection(timeout)
                sent = False
                try:
                    conn.request(method, self.prefix + path, body=payload, headers=headers)
                    sent = True
                    response = conn.getresponse()
                    status, raw = response.status, response.read()
                    break
                except RETRYABLE as exc:
                    self._drop()
                    if attempt == 1:
                        continue
                    raise TransportError(exc, sent=sent) from exc
                except (OSError, http.client.HTTPException) as exc:
                    self._drop()
                    raise TransportError(exc, sent=sent) from exc
                except BaseException:
                    self._drop()
                    raise
        return _decode(status, raw)

    def call(
        self, method: str, path: str, body: Any = None, timeout_s: float | None = None
    ) -> Any:
        """One request whose answer must be a success: its JSON body (its text when not
        JSON, None when empty); an error status raises :attr:`status_error`."""
        answer = self.exchange(method, path, body, timeout_s)
        if answer.status >= 400:
            raise self.status_error(answer.status, self.error_message(answer))
        if answer.is_json:
            return answer.data
        return answer.text.strip() or None

    def error_message(self, answer: JsonResponse) -> str:
        """What an error answer says, from the first of :attr:`message_fields` it has."""
        data = answer.data
        if isinstance(data, Mapping):
            for name in self.message_fields:
                if data.get(name):
                    return str(data[name])
            return str(dict(data))
        if answer.is_json:
            return str(data)
        return answer.text.strip() or f"HTTP {answer.status} with an empty body"

    def close(self) -> None:
        with self._lock:
            self._drop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _connection(self, timeout_s: float) -> http.client.HTTPConnection:
        if self._conn is None and self.unix_socket is not None:
            self._conn = UnixHTTPConnection(self.unix_socket, timeout_s)
        elif self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout_s)
        elif self._conn.timeout != timeout_s:
            self._conn.timeout = timeout_s
            if self._conn.sock is not None:
                self._conn.sock.settimeout(timeout_s)
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _decode(status: int, raw: bytes) -> JsonResponse:
    text = raw.decode("utf-8", "replace")
    if not raw.strip():
        return JsonResponse(status, None, text, False)
    try:
        return JsonResponse(status, json.loads(raw), text, True)
    except ValueError:
        return JsonResponse(status, None, text, False)
