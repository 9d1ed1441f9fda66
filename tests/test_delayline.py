"""The NFQUEUE delay line with real sockets between loopback addresses (as process-backend
nodes are): a one-way delay measured by round trips, TCP and UDP; loss, duplication,
reordering and a bandwidth cap on datagrams; a dead line is the harness's error; healing
and closing leave no rule, queue or process behind.

Each delay is put on one direction only, so a round trip is the delay plus loopback's
fraction of a millisecond.
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from gossipcert.chaos import delayline
from gossipcert.chaos.delayline import LineFaults, delay_unavailable_reason
from gossipcert.chaos.packet import Flow, PacketPlane
from gossipcert.chaos.runlabels import RUN_LABEL_ENV
from gossipcert.harness.drivers.faultplanes import PacketFaults
from gossipcert.harness.drivers.sweep import labelled_processes
from gossipcert.harness.errors import HarnessError
from host_tools import need

pytestmark = pytest.mark.slow

A, B = "127.0.0.2", "127.0.0.3"
SAMPLES = 25


def queues_bound() -> list[int]:
    """Queue numbers bound in this namespace (``/proc/net/netfilter/nfnetlink_queue``)."""
    try:
        text = Path("/proc/net/netfilter/nfnetlink_queue").read_text()
    except OSError:
        return []
    return [int(line.split()[0]) for line in text.splitlines() if line.strip()]


@pytest.fixture
def packet_faults() -> Iterator[tuple[PacketFaults, dict[tuple[str, str], Flow]]]:
    """The packet plane's adapter as a cluster holds it, over flows the test sets."""
    need(delay_unavailable_reason())
    if delayline.netem_available():
        pytest.skip("this kernel has netem: the delay line is not the mechanism here")
    label = f"test-dl-{uuid.uuid4().hex}"
    flows: dict[tuple[str, str], Flow] = {}
    plane = PacketFaults(lambda: PacketPlane(label), lambda s, d: flows[(s, d)],
                         lambda n: None,  # type: ignore[arg-type,return-value]
                         run_label=label, env={**os.environ, RUN_LABEL_ENV: label}, seed=7)
    before = set(queues_bound())
    try:
        yield plane, flows
    finally:
        plane.close()
    # Nothing left: no chain, no queue, no line process of this run.
    saved = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    from gossipcert.chaos.packet import chain_name
    assert chain_name(label) not in saved
    assert set(queues_bound()) <= before
    assert labelled_processes(label) == {}


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def udp_round_trips(a: socket.socket, b: socket.socket, n: int = SAMPLES) -> list[float]:
    out = []
    for i in range(n):
        t = time.monotonic()
        a.sendto(i.to_bytes(4, "big"), b.getsockname())
        data, addr = b.recvfrom(64)
        b.sendto(data, addr)
        a.recvfrom(64)
        out.append((time.monotonic() - t) * 1000)
    return out


def tcp_round_trips(conn: socket.socket, n: int = SAMPLES) -> list[float]:
    """Round trips of ``ping`` to an echo on the other end of ``conn``, in ms."""
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    out = []
    for _ in range(n):
        t = time.monotonic()
        conn.sendall(b"ping")
        assert conn.recv(64) == b"ping"
        out.append((time.monotonic() - t) * 1000)
    return out


def assert_one_way_100_ms(rtts: list[float]) -> None:
    """Median and p95 round trip within 5 ms of the 100 ms delayed one way."""
    assert abs(statistics.median(rtts) - 100) <= 5, rtts
    assert abs(_p(rtts, 0.95) - 100) <= 5, rtts


def bound_udp(host: str) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, 0))
    s.settimeout(2.0)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
    return s


def test_one_way_udp_delay_is_100_ms_within_5(packet_faults: tuple[PacketFaults, dict]) -> None:
    plane, flows = packet_faults
    a, b = bound_udp(A), bound_udp(B)
    try:
        flows[("n1", "n2")] = Flow(src=A, dst=B, ports=(a.getsockname()[1], b.getsockname()[1]),
                                   protocols=("udp",))
        plane.latency([("n1", "n2")], 100, 0)
        rtts = udp_round_trips(a, b)
        assert_one_way_100_ms(rtts)
        assert min(rtts) >= 100, rtts
        plane.heal()
        assert statistics.median(udp_round_trips(a, b, 10)) < 5
    finally:
        a.close()
        b.close()


def test_one_way_tcp_delay_is_100_ms_within_5(packet_faults: tuple[PacketFaults, dict]) -> None:
    plane, flows = packet_faults
    server = socket.socket()
    server.bind((B, 0))
    server.listen()
    client = socket.socket()
    client.bind((A, 0))
    flows[("n1", "n2")] = Flow(src=A, dst=B, ports=(server.getsockname()[1],),
                               protocols=("tcp",))

    def echo() -> None:
        conn, _ = server.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with conn:
            while data := conn.recv(64):
                conn.sendall(data)

    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    try:
        plane.latency([("n1", "n2")], 100, 0)
        client.connect(server.getsockname())  # the SYN is delayed too
        rtts = tcp_round_trips(client)
        assert_one_way_100_ms(rtts)
        assert min(rtts) >= 100, rtts
    finally:
        client.close()
        thread.join(timeout=5)
        server.close()


def _blast(a: socket.socket, b: socket.socket, count: int, size: int = 16,
           quiet_s: float = 0.3) -> list[int]:
    """Send ``count`` numbered datagrams; the numbers that arrive, in arrival order."""
    for i in range(count):
        a.sendto(i.to_bytes(4, "big").ljust(size, b"."), b.getsockname())
        if i % 200 == 199:
            time.sleep(0.002)  # keep within the receiver's buffer
    got = []
    b.settimeout(quiet_s)
    try:
        while True:
            got.append(int.from_bytes(b.recv(2048)[:4], "big"))
    except TimeoutError:
        return got


def test_loss_duplication_reordering_and_a_rate_cap_on_datagrams(
        packet_faults: tuple[PacketFaults, dict]) -> None:
    """3000 datagrams at 20% loss arrive 2400 +- 3% of 3000 (about four standard
    deviations); at 30% duplication 3900 +- 90; with reordering some arrive before an
    earlier one; 20 datagrams of 1000 bytes at 800 kbit/s take 0.2 s."""
    plane, flows = packet_faults
    a, b = bound_udp(A), bound_udp(B)
    try:
        flows[("n1", "n2")] = Flow(src=A, dst=B, ports=(b.getsockname()[1],),
                                   protocols=("udp",))
        plane.degrade([("n1", "n2")], LineFaults(loss=0.2))
        got = _blast(a, b, 3000)
        assert abs(len(got) - 2400) <= 90, len(got)
        plane.heal()

        plane.degrade([("n1", "n2")], LineFaults(duplicate=0.3))
        got = _blast(a, b, 3000)
        assert abs(len(got) - 3900) <= 90, len(got)
        assert set(got) == set(range(3000))
        plane.heal()

        plane.degrade([("n1", "n2")], LineFaults(latency_ms=20, reorder=0.25))
        got = _blast(a, b, 400)
        assert sorted(got) == list(range(400))
        assert any(x < y for y, x in zip(got, got[1:], strict=False)), "nothing reordered"
        plane.heal()

        plane.degrade([("n1", "n2")], LineFaults(rate_kbit=800))
        t = time.monotonic()
        for i in range(20):
            a.sendto(i.to_bytes(4, "big").ljust(1000, b"."), b.getsockname())
        b.settimeout(2.0)
        for _ in range(20):
            b.recv(2048)
        took = time.monotonic() - t
        wire = 20 * (1000 + 28) * 8 / 800_000  # IP and UDP headers count
        assert wire - 0.02 <= took <= wire + 0.05, took
    finally:
        a.close()
        b.close()


def test_a_dead_line_is_the_harness_error(packet_faults: tuple[PacketFaults, dict]) -> None:
    """``--queue-bypass``: with the line gone its link carries packets undelayed; the
    plane says so at its next confirmation and at the heal, which still removes all."""
    plane, flows = packet_faults
    flows[("n1", "n2")] = Flow(src=A, dst=B, ports=(9,), protocols=("udp",))
    flows[("n2", "n1")] = Flow(src=B, dst=A, ports=(9,), protocols=("udp",))
    plane.latency([("n1", "n2")], 50, 0)
    [line] = plane.lines
    os.kill(line.proc.pid, signal.SIGKILL)
    line.proc.wait(timeout=5)
    with pytest.raises(HarnessError, match="delay line"):
        plane.cut([("n2", "n1")])
    with pytest.raises(HarnessError, match="delay line"):
        plane.heal()
    assert plane.packets is not None and plane.packets.active() == 0


ECHO = """
import socket, threading
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 7000))
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("0.0.0.0", 7000)); t.listen()
def tcp():
    while True:
        c, _ = t.accept()
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while d := c.recv(64):
            c.sendall(d)
        c.close()
threading.Thread(target=tcp, daemon=True).start()
print("ready", flush=True)
while True:
    d, a = u.recvfrom(64)
    u.sendto(d, a)
"""


@pytest.mark.docker
def test_one_way_delay_inside_a_container_namespace(
        packet_faults: tuple[PacketFaults, dict]) -> None:
    """The line runs in the container's namespace (``nsenter -n``) with its rule there:
    UDP and TCP round trips from the host to an echo in the container are 100 ms within
    5 with the delay on the way in only."""
    from gossipcert.chaos.runlabels import OWNER_LABEL, RUN_LABEL, owner_label
    from gossipcert.harness.drivers.images import build_reference, docker_client

    plane, flows = packet_faults
    client = docker_client()
    image = build_reference(client, lambda line: None)
    container = client.containers.run(
        image, ["-c", ECHO], entrypoint="python3", detach=True,
        labels={RUN_LABEL: plane_label(plane), OWNER_LABEL: owner_label()})
    try:
        deadline = time.monotonic() + 30
        while b"ready" not in container.logs() and time.monotonic() < deadline:
            time.sleep(0.1)
        container.reload()
        ip = container.attrs["NetworkSettings"]["IPAddress"]
        pid = int(container.attrs["State"]["Pid"])
        flows[("host", "c")] = Flow(dst=ip, ports=(7000,), netns_pid=pid)
        plane.latency([("host", "c")], 100, 0)
        assert plane.packets is not None and plane.packets.listed(None) == []
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.settimeout(2.0)
        rtts = []
        for i in range(SAMPLES):
            t = time.monotonic()
            u.sendto(i.to_bytes(4, "big"), (ip, 7000))
            u.recvfrom(64)
            rtts.append((time.monotonic() - t) * 1000)
        u.close()
        assert_one_way_100_ms(rtts)
        with socket.create_connection((ip, 7000), timeout=5) as conn:
            assert_one_way_100_ms(tcp_round_trips(conn))
        plane.heal()
        inside = subprocess.run(["nsenter", "-t", str(pid), "-n", "iptables-save"],
                                capture_output=True, text=True, check=True).stdout
        assert "NFQUEUE" not in inside
        queues = Path(f"/proc/{pid}/net/netfilter/nfnetlink_queue")
        assert not queues.exists() or not queues.read_text().strip()
    finally:
        container.remove(force=True)


def plane_label(plane: PacketFaults) -> str:
    return plane.env[RUN_LABEL_ENV]


def test_the_line_of_a_crashed_run_is_found_and_killed_by_the_sweep() -> None:
    """A line carries its run's label: once the harness that started it is gone (here a
    label naming a pid that no longer runs) it is an orphan, and the sweep kills it."""
    need(delay_unavailable_reason())
    from gossipcert.chaos.delayline import LineProcess
    from gossipcert.harness.drivers.sweep import orphaned_processes, sweep

    dead = subprocess.Popen(["true"])
    dead.wait()
    label = f"gc-1-{dead.pid}-{int(time.time())}"
    line = LineProcess({65000: LineFaults(latency_ms=10)}, None,
                       {**os.environ, RUN_LABEL_ENV: label})
    try:
        assert orphaned_processes().get(line.proc.pid) == label
        assert sweep(label) == [line.proc.pid]
        line.proc.wait(timeout=5)
        assert line.failure() is not None and 65000 not in queues_bound()
    finally:
        line.stop()
