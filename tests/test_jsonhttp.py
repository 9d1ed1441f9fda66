"""The JSON-over-HTTP client base, through its subclasses and over a Unix socket: the
control client turns every answer and every transport failure into a Reply whose outcome
the history can trust; the Toxiproxy client raises. One kept-alive connection, one fresh
try when it was closed."""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from gossipcert.chaos.errors import ChaosError
from gossipcert.chaos.jsonhttp import JsonHttpClient, TransportError
from gossipcert.chaos.toxiproxy_client import ToxiproxyClient, ToxiproxyError
from gossipcert.harness.drivers.control_client import ControlClient, Reply
from gossipcert.harness.errors import EXIT_BAD_INPUT


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the nodes' servers do
    connections: set[int] = set()

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        Handler.connections.add(id(self.connection))
        length = int(self.headers.get("Content-Length") or 0)
        sent = json.loads(self.rfile.read(length)) if length else None
        if self.path == "/v1/node":
            self._answer(200, json.dumps({"id": "n1", "ready": True}).encode())
        elif self.path == "/echo":
            self._answer(200, json.dumps({"method": self.command, "body": sent}).encode())
        elif self.path == "/missing":
            self._answer(404, b'{"error": "not_found", "message": "no such key"}')
        elif self.path == "/proxies/nope":
            self._answer(404, b'{"error": "proxy not found", "status": 404}')
        elif self.path == "/text":
            self._answer(200, b"hello", "text/plain")
        elif self.path == "/plain-error":
            self._answer(500, b"404 page not found\n", "text/plain")
        elif self.path == "/slow":
            time.sleep(0.6)
            self._answer(200, b"{}")
        elif self.path == "/hang-up":
            # Answer, then close the kept-alive connection without saying so.
            self._answer(200, b'{"first": true}')
            self.close_connection = True
        else:
            self._answer(404, b'{"error": "no route"}')

    do_GET = do_PUT = do_POST = do_DELETE = _handle


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that gave up on a slow answer: what the tests do on purpose


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def control(server: ThreadingHTTPServer) -> Iterator[ControlClient]:
    with ControlClient("127.0.0.1", server.server_address[1], timeout_s=0.3) as client:
        yield client


def test_a_success_is_ok_with_the_json_body(control: ControlClient) -> None:
    assert control.node() == Reply(200, {"id": "n1", "ready": True}, "ok")
    reply = control.request("PUT", "/echo", {"value": [1, "a"]})
    assert reply.ok and reply.body == {"method": "PUT", "body": {"value": [1, "a"]}}


def test_one_connection_serves_every_call(control: ControlClient) -> None:
    Handler.connections.clear()
    for _ in range(5):
        assert control.node().ok
    assert len(Handler.connections) == 1


def test_an_error_status_is_a_fail_with_the_message(control: ControlClient) -> None:
    reply = control.request("GET", "/missing")
    assert (reply.status, reply.outcome) == (404, "fail")
    assert reply.body == {"error": "not_found", "message": "no such key"}
    assert reply.error == "HTTP 404: no such key"


def test_a_body_that_is_not_json_says_so(control: ControlClient) -> None:
    reply = control.request("GET", "/text")
    assert reply.ok and reply.body == {"error": "bad_json", "message": "hello"}


def test_a_closed_keep_alive_connection_gets_one_fresh_try(control: ControlClient) -> None:
    assert control.request("GET", "/hang-up").body == {"first": True}
    assert control.node().ok  # on a fresh connection, not a failure


def test_a_write_that_timed_out_may_have_happened(control: ControlClient) -> None:
    """Sent and unanswered: a write is ``info`` (outcome unknown), a read ``fail``."""
    write = control.request("PUT", "/slow", {"value": 1})
    assert (write.status, write.outcome) == (0, "info")
    assert write.error is not None and write.error.startswith("timeout: ")
    read = control.request("GET", "/slow")
    assert read.outcome == "fail"
    assert control.request("GET", "/slow", timeout_s=3.0).ok  # a longer timeout, per call
    assert control.node().ok


def test_a_refused_connection_certainly_did_nothing() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    reply = ControlClient("127.0.0.1", port).put("k", "v")
    assert (reply.status, reply.outcome) == (0, "fail")
    assert reply.error is not None and reply.error.startswith("ConnectionRefusedError")


def test_the_toxiproxy_client_raises_what_the_base_shapes(server: ThreadingHTTPServer) -> None:
    url = f"http://127.0.0.1:{server.server_address[1]}"
    with ToxiproxyClient(url, timeout_s=0.3) as client:
        with pytest.raises(ToxiproxyError) as missing:
            client.get_proxy("nope")
        assert (missing.value.status, missing.value.message) == (404, "proxy not found")
        assert isinstance(missing.value, ChaosError)  # the CLI's one-line errors
        with pytest.raises(ToxiproxyError, match="404 page not found"):
            client.call("GET", "/plain-error")
        assert client.call("GET", "/text") == "hello"
        with pytest.raises(TransportError) as slow:
            client.call("GET", "/slow")
        assert slow.value.timed_out and isinstance(slow.value, OSError)
    assert ChaosError.exit_code == EXIT_BAD_INPUT


def test_the_base_is_usable_on_its_own(server: ThreadingHTTPServer) -> None:
    with JsonHttpClient("127.0.0.1", server.server_address[1], timeout_s=1.0) as client:
        answer = client.exchange("POST", "/echo", {"a": 1})
        assert answer.ok and answer.is_json and answer.data["body"] == {"a": 1}
        assert client.address == f"127.0.0.1:{server.server_address[1]}"


class UnixHandler(Handler):
    def address_string(self) -> str:
        return "unix"  # a Unix socket's peer has no address to log


class UnixServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True


def test_the_base_speaks_over_a_unix_socket_as_the_docker_engine_does(tmp_path: Path) -> None:
    path = str(tmp_path / "engine.sock")
    engine = UnixServer(path, UnixHandler)
    threading.Thread(target=engine.serve_forever, args=(0.05,), daemon=True).start()
    try:
        with JsonHttpClient.unix(path, timeout_s=1.0) as client:
            assert client.address == path
            assert client.exchange("GET", "/v1/node").data == {"id": "n1", "ready": True}
            assert client.call("POST", "/echo", {"a": 1}) == {"method": "POST",
                                                               "body": {"a": 1}}
        with pytest.raises(TransportError) as refused:
            JsonHttpClient.unix(str(tmp_path / "none.sock"), timeout_s=1.0).exchange("GET", "/")
        assert not refused.value.sent
    finally:
        engine.shutdown()
        engine.server_close()
