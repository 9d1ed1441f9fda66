"""The link plane with real sockets: bytes through proxies, and each toxic's effect on them."""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import struct
import threading
import time
from collections.abc import Iterator

import pytest
from gossipcert.chaos.toxiproxy.testing import EchoServer, GreeterServer, connect, recv_exactly
from gossipcert.chaos.toxiproxy_client import ToxiproxyClient
from gossipcert.harness.drivers.waiting import wait_until


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoServer]:
    with EchoServer() as upstream:
        yield upstream


@pytest.fixture
def listen(proxy_client: ToxiproxyClient, echo: EchoServer) -> str:
    """A proxy in front of the echo server; its listen address."""
    return str(proxy_client.create_proxy("echo", "127.0.0.1:0", echo.address)["listen"])


def ping_ms(sock: socket.socket, payload: bytes = b"x") -> float:
    started = time.perf_counter()
    sock.sendall(payload)
    assert recv_exactly(sock, len(payload)) == payload
    return (time.perf_counter() - started) * 1000


def median_ping_ms(sock: socket.socket, count: int = 5) -> float:
    return statistics.median(ping_ms(sock) for _ in range(count))


def expect_closed(sock: socket.socket, within_s: float = 2.0) -> None:
    """The proxy closed (FIN or RST) this socket; blackholed data must not count as open."""
    sock.settimeout(within_s)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass


def echo_through(address: str, payload: bytes) -> bytes:
    """Send ``payload`` from a thread while reading the echo, so neither side stalls."""
    with connect(address, timeout_s=20) as sock:
        writer = threading.Thread(target=sock.sendall, args=(payload,))
        writer.start()
        received = recv_exactly(sock, len(payload))
        writer.join()
    return received


# --- plain forwarding -------------------------------------------------------------------


def test_bytes_pass_unchanged_both_ways(listen: str) -> None:
    payload = os.urandom(4 * 1024 * 1024)
    assert echo_through(listen, payload) == payload


def test_half_close_travels_after_the_data(proxy_client: ToxiproxyClient, listen: str) -> None:
    proxy_client.add_toxic("echo", "latency", {"latency": 20}, stream="upstream")
    with connect(listen) as sock:
        sock.sendall(b"last words")
        sock.shutdown(socket.SHUT_WR)
        assert recv_exactly(sock, 10) == b"last words"
        assert sock.recv(10) == b""


def test_unreachable_upstream_closes_the_client(proxy_client: ToxiproxyClient) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{sock.getsockname()[1]}"  # bound, never listening: refused
        listen = proxy_client.create_proxy("dead", "127.0.0.1:0", dead)["listen"]
        with connect(listen) as conn:
            expect_closed(conn)


# --- latency ----------------------------------------------------------------------------


def test_latency_within_tolerance(proxy_client: ToxiproxyClient, listen: str) -> None:
    with connect(listen) as sock:
        baseline = median_ping_ms(sock)
        proxy_client.add_toxic("echo", "latency", {"latency": 100})
        delayed = median_ping_ms(sock)
    assert 100 - 10 <= delayed <= 100 + 10 + baseline, (baseline, delayed)


def test_latency_with_jitter(proxy_client: ToxiproxyClient, listen: str) -> None:
    proxy_client.add_toxic("echo", "latency", {"latency": 100, "jitter": 20})
    with connect(listen) as sock:
        pings = [ping_ms(sock) for _ in range(6)]
    assert all(100 - 30 <= p <= 100 + 30 + 5 for p in pings), pings


def test_latency_both_streams_adds_up(proxy_client: ToxiproxyClient, listen: str) -> None:
    proxy_client.add_toxic("echo", "latency", {"latency": 50}, stream="upstream")
    proxy_client.add_toxic("echo", "latency", {"latency": 50}, stream="downstream")
    with connect(listen) as sock:
        assert 90 <= median_ping_ms(sock, 3) <= 125


def test_latency_keeps_throughput(proxy_client: ToxiproxyClient, listen: str) -> None:
    """Delays are pipelined: 16 MB under 100 ms latency is far from 100 ms per chunk."""
    proxy_client.add_toxic("echo", "latency", {"latency": 100})
    payload = os.urandom(16 * 1024 * 1024)
    started = time.perf_counter()
    assert echo_through(listen, payload) == payload
    assert time.perf_counter() - started < 1.5


def test_toxic_changes_apply_to_an_open_connection(
    proxy_client: ToxiproxyClient, listen: str,
) -> None:
    with connect(listen) as sock:
        assert median_ping_ms(sock) < 50
        proxy_client.add_toxic("echo", "latency", {"latency": 100}, name="lag")
        assert median_ping_ms(sock, 3) >= 90
        proxy_client.update_toxic("echo", "lag", {"latency": 200})
        assert median_ping_ms(sock, 3) >= 190
        proxy_client.remove_toxic("echo", "lag")
        assert median_ping_ms(sock) < 50


def test_toxicity_zero_never_applies(proxy_client: ToxiproxyClient, listen: str) -> None:
    proxy_client.add_toxic("echo", "latency", {"latency": 500}, toxicity=0.0)
    with connect(listen) as sock:
        assert median_ping_ms(sock, 3) < 100


# --- timeout: the partition -----------------------------------------------------------


def test_timeout_zero_blackholes_then_removal_closes(
    proxy_client: ToxiproxyClient, listen: str,
) -> None:
    with connect(listen) as sock:
        assert ping_ms(sock) < 100
        for stream in ("upstream", "downstream"):
            proxy_client.add_toxic("echo", "timeout", {"timeout": 0}, name=f"cut_{stream}",
                                   stream=stream)
        sock.sendall(b"into the void")
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(100)  # no data and no EOF: the connection stays open
        proxy_client.remove_toxic("echo", "cut_upstream")
        proxy_client.remove_toxic("echo", "cut_downstream")
        expect_closed(sock)
    with connect(listen) as fresh:
        assert ping_ms(fresh) < 100  # new connections pass again


def test_timeout_positive_closes_after_it(proxy_client: ToxiproxyClient, listen: str) -> None:
    with connect(listen) as sock:
        ping_ms(sock)
        started = time.perf_counter()
        proxy_client.add_toxic("echo", "timeout", {"timeout": 300})
        sock.sendall(b"dropped")
        expect_closed(sock, within_s=3)
        elapsed_ms = (time.perf_counter() - started) * 1000
    assert 250 <= elapsed_ms <= 600, elapsed_ms


# --- proxy up and down ------------------------------------------------------------------


def test_disable_closes_connections_and_refuses_new_ones(
    proxy_client: ToxiproxyClient, listen: str
) -> None:
    with connect(listen) as sock:
        ping_ms(sock)
        proxy_client.disable_proxy("echo")
        expect_closed(sock)
    with pytest.raises(ConnectionRefusedError):
        connect(listen, timeout_s=1).close()
    proxy_client.enable_proxy("echo")
    with connect(listen) as sock:
        assert ping_ms(sock) < 100


def test_delete_closes_connections(proxy_client: ToxiproxyClient, listen: str) -> None:
    with connect(listen) as sock:
        ping_ms(sock)
        proxy_client.delete_proxy("echo")
        expect_closed(sock)


def test_reset_heals(proxy_client: ToxiproxyClient, listen: str) -> None:
    proxy_client.add_toxic("echo", "latency", {"latency": 300})
    proxy_client.disable_proxy("echo")
    proxy_client.reset()
    assert proxy_client.get_proxy("echo")["enabled"] is True
    with connect(listen) as sock:
        assert median_ping_ms(sock, 3) < 100


# --- the other toxics -------------------------------------------------------------------


def test_bandwidth_paces_the_stream(proxy_client: ToxiproxyClient, listen: str) -> None:
    proxy_client.add_toxic("echo", "bandwidth", {"rate": 1000})  # 1000 KB/s downstream
    payload = os.urandom(200_000)
    started = time.perf_counter()
    assert echo_through(listen, payload) == payload
    elapsed_ms = (time.perf_counter() - started) * 1000
    assert 190 <= elapsed_ms <= 250, elapsed_ms


def test_limit_data_passes_that_much_then_closes(
    proxy_client: ToxiproxyClient, listen: str,
) -> None:
    proxy_client.add_toxic("echo", "limit_data", {"bytes": 100})
    with connect(listen) as sock:
        sock.sendall(bytes(range(200)) + bytes(100))
        assert recv_exactly(sock, 100) == bytes(range(100))
        expect_closed(sock)


def test_reset_peer_sends_rst(proxy_client: ToxiproxyClient, listen: str) -> None:
    proxy_client.add_toxic("echo", "reset_peer", {"timeout": 0}, stream="upstream")
    with connect(listen) as sock:
        sock.sendall(b"hello")
        sock.settimeout(2)
        with pytest.raises(ConnectionResetError):
            sock.recv(10)


def test_slow_close_delays_the_close(proxy_client: ToxiproxyClient) -> None:
    with GreeterServer(b"hi") as greeter:
        listen = proxy_client.create_proxy("greet", "127.0.0.1:0", greeter.address)["listen"]
        proxy_client.add_toxic("greet", "slow_close", {"delay": 300})
        with connect(listen) as sock:
            started = time.perf_counter()
            assert recv_exactly(sock, 2) == b"hi"
            assert (time.perf_counter() - started) < 0.2
            assert sock.recv(10) == b""
            elapsed_ms = (time.perf_counter() - started) * 1000
    assert 250 <= elapsed_ms <= 600, elapsed_ms


def test_slicer_keeps_the_bytes(proxy_client: ToxiproxyClient, listen: str) -> None:
    proxy_client.add_toxic("echo", "slicer", {"average_size": 10, "size_variation": 5, "delay": 50})
    payload = os.urandom(5000)
    with connect(listen) as sock:
        sock.sendall(payload)
        received = b""
        reads = 0
        while len(received) < len(payload):
            chunk = sock.recv(65536)
            assert chunk
            received += chunk
            reads += 1
    assert received == payload
    assert reads > 1


# --- ordering while toxics change -----------------------------------------------------


def _churn_while_writing(proxy_client: ToxiproxyClient, listen: str, writes: int) -> None:
    """Many small writes, echoed back, while toxics come and go on both streams."""
    expected = b"".join(struct.pack(">I", i) for i in range(writes))
    done = threading.Event()
    received: list[bytes] = []
    steps = [0]

    def churn() -> None:
        kinds = [
            ("latency", {"latency": 3, "jitter": 2}),
            ("slicer", {"average_size": 3, "size_variation": 2, "delay": 20}),
            ("bandwidth", {"rate": 5000}),
            ("slow_close", {"delay": 1}),
        ]
        step = 0
        while not done.is_set():
            toxic_type, attributes = kinds[step % len(kinds)]
            stream = ("upstream", "downstream")[step % 2]
            name = f"{toxic_type}_{stream}"
            proxy_client.add_toxic("echo", toxic_type, attributes, name=name, stream=stream)
            time.sleep(0.002)
            if step % 3 == 0:
                proxy_client.update_toxic("echo", name, toxicity=0.5)
            proxy_client.remove_toxic("echo", name)
            step += 1
            steps[0] = step

    with connect(listen, timeout_s=20) as sock:

        def read() -> None:
            received.append(recv_exactly(sock, len(expected)))

        reader = threading.Thread(target=read)
        churner = threading.Thread(target=churn)
        reader.start()
        churner.start()
        try:
            for i in range(writes):
                sock.sendall(expected[4 * i : 4 * i + 4])
                if i % 64 == 63:
                    time.sleep(0.001)  # spread the writes over many toxic changes
            reader.join(timeout=60)
        finally:
            done.set()
            churner.join()
    assert received and received[0] == expected
    assert steps[0] >= 5, "the toxics hardly changed during the writes"


def test_no_byte_lost_or_reordered_while_toxics_change(
    proxy_client: ToxiproxyClient, listen: str
) -> None:
    _churn_while_writing(proxy_client, listen, 5000)


@pytest.mark.slow
def test_65535_writes_survive_toxic_churn(proxy_client: ToxiproxyClient, listen: str) -> None:
    _churn_while_writing(proxy_client, listen, 65535)


def test_bandwidth_pushes_back_on_the_sender(proxy_client: ToxiproxyClient, listen: str) -> None:
    """A slow link queues ~200 ms of data in the proxy; past that the sender waits."""
    proxy_client.add_toxic("echo", "bandwidth", {"rate": 100}, stream="upstream")  # 100 KB/s
    with connect(listen) as sock:
        sock.settimeout(0.05)
        sent = 0
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                sent += sock.send(bytes(65536))
    # Without push-back the proxy would swallow hundreds of MB in half a second;
    # with it, only kernel socket buffers and the stage's small queue fill up.
    assert sent < 16 * 1024 * 1024, sent


# --- traffic counters (an extension: GET /proxies/{name}/stats, GET /stats) --------------


def test_counters_count_connections_reads_and_bytes_each_way(proxy_client: ToxiproxyClient,
                                                             listen: str) -> None:
    with connect(listen) as sock:
        for i in range(5):
            payload = b"m" * (10 + i)
            sock.sendall(payload)
            assert recv_exactly(sock, len(payload)) == payload  # one read each way, apart
    with connect(listen) as sock:
        sock.sendall(b"hello")
        assert recv_exactly(sock, 5) == b"hello"
    stats = proxy_client.proxy_stats("echo")
    assert stats["protocol"] == "tcp" and stats["connections"] == 2
    sent = sum(10 + i for i in range(5)) + 5
    assert stats["upstream"] == {"chunks": 6, "bytes": sent}
    assert stats["downstream"] == {"chunks": 6, "bytes": sent}
    every = proxy_client.stats()
    assert every is not None and every["proxies"]["echo"] == stats
    assert every["udp_proxies"] == {}


def test_counters_count_what_the_sender_sent_through_a_partition(proxy_client: ToxiproxyClient,
                                                                 listen: str) -> None:
    """A blackhole drops the bytes, yet they count: the sender's pace is what is measured;
    disabling, enabling and POST /reset keep the counters."""
    with connect(listen) as sock:
        assert ping_ms(sock) >= 0
        proxy_client.add_toxic("echo", "timeout", {"timeout": 0}, stream="upstream")
        time.sleep(0.05)
        sock.sendall(b"lost")
        wait_until(lambda: proxy_client.proxy_stats("echo")["upstream"]["bytes"] >= 5, 2.0, 0.01)
    assert proxy_client.proxy_stats("echo")["upstream"] == {"chunks": 2, "bytes": 5}
    proxy_client.disable_proxy("echo")
    proxy_client.enable_proxy("echo")
    proxy_client.reset()
    assert proxy_client.proxy_stats("echo")["upstream"] == {"chunks": 2, "bytes": 5}


def test_counters_of_an_unknown_proxy_are_404(proxy_client: ToxiproxyClient) -> None:
    from gossipcert.chaos.toxiproxy_client import ToxiproxyError

    with pytest.raises(ToxiproxyError) as caught:
        proxy_client.proxy_stats("nope")
    assert caught.value.status == 404


def test_a_server_without_counters_reads_as_none() -> None:
    """A real Toxiproxy answers 404 to GET /stats: the client says it cannot count."""
    import http.server

    class Plain(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self.send_response(404)
            self.end_headers()
            self.wfile.write(b"404 page not found\n")

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Plain)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        with ToxiproxyClient(f"http://127.0.0.1:{httpd.server_address[1]}") as plain:
            assert plain.stats() is None
    finally:
        httpd.shutdown()
        httpd.server_close()
