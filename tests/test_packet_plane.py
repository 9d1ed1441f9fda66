"""The packet plane with real sockets: one-way and two-way cuts and random loss, TCP and UDP,
on loopback addresses (process-backend nodes) and inside a network namespace (as for
containers); healing and closing leave no rule behind."""

from __future__ import annotations

import contextlib
import random
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest
from gossipcert.chaos.packet import Flow, PacketPlane, chain_name, sweep_chains, unavailable_reason
from gossipcert.harness.drivers.waiting import wait_until
from host_tools import need


@pytest.fixture
def plane() -> Iterator[PacketPlane]:
    need(unavailable_reason())
    p = PacketPlane(f"test-{uuid.uuid4().hex}")
    try:
        yield p
    finally:
        p.close()
    assert p.chain not in iptables_save(), "closing left our chain behind"


def iptables_save() -> str:
    return subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout


def udp(host: str) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, 0))
    s.settimeout(0.05)
    return s


def port(s: socket.socket) -> int:
    return int(s.getsockname()[1])


def delivered(sender: socket.socket, receiver: socket.socket, count: int = 20) -> int:
    """How many of ``count`` datagrams sent now arrive."""
    tag = uuid.uuid4().bytes
    target = receiver.getsockname()
    for _ in range(count):
        with contextlib.suppress(PermissionError):  # an OUTPUT drop tells the sender
            sender.sendto(tag, target)
    got = 0

    def all_arrived() -> bool:  # each look waits up to the socket's timeout
        nonlocal got
        with contextlib.suppress(TimeoutError):
            data, _ = receiver.recvfrom(64)
            if data == tag:
                got += 1
        return got == count

    wait_until(all_arrived, 0.5, every_s=0.0)
    return got


def test_one_way_udp_cut_drops_one_direction_only_and_heals(plane: PacketPlane) -> None:
    a, b, c = udp("127.0.0.2"), udp("127.0.0.3"), udp("127.0.0.4")
    try:
        assert delivered(a, b) == 20
        plane.cut(Flow(src="127.0.0.2", dst="127.0.0.3", ports=(port(a), port(b)),
                       protocols=("udp",)), tag="n1->n2")
        assert plane.confirm()
        assert len(plane.listed()) == 1
        assert "n1->n2" in plane.listed()[0]
        assert delivered(a, b) == 0          # the cut direction
        assert delivered(b, a) == 20         # the other direction
        assert delivered(a, c) == 20         # another peer of the same sender
        plane.heal()
        assert plane.listed() == []
        assert plane.chain not in iptables_save(), "healing left a rule or chain behind"
        assert delivered(a, b) == 20
    finally:
        for s in (a, b, c):
            s.close()


def test_rules_match_the_run_ports_only(plane: PacketPlane) -> None:
    """Another run on the same loopback addresses (other ports) is untouched."""
    a, b, other = udp("127.0.0.2"), udp("127.0.0.3"), udp("127.0.0.2")
    try:
        plane.cut(Flow(src="127.0.0.2", dst="127.0.0.3", ports=(port(a), port(b))))
        assert delivered(a, b) == 0
        other_b = udp("127.0.0.3")
        try:
            assert delivered(other, other_b) == 20
        finally:
            other_b.close()
    finally:
        for s in (a, b, other):
            s.close()


def test_two_way_tcp_cut_stalls_a_connection_that_resumes_after_heal(
    plane: PacketPlane,
) -> None:
    server = socket.create_server(("127.0.0.3", 0))
    client = socket.create_connection(("127.0.0.3", port(server)),
                                      source_address=("127.0.0.2", 0))
    peer, _ = server.accept()
    try:
        peer.settimeout(0.5)
        client.sendall(b"before")
        assert peer.recv(64) == b"before"
        ports = (port(server),)
        plane.cut(Flow(src="127.0.0.2", dst="127.0.0.3", ports=ports, protocols=("tcp",)))
        plane.cut(Flow(src="127.0.0.3", dst="127.0.0.2", ports=ports, protocols=("tcp",)))
        assert plane.confirm() and len(plane.listed()) == 2
        client.sendall(b"during")
        with pytest.raises(TimeoutError):
            peer.recv(64)
        with pytest.raises(OSError):  # new connections cannot be made either
            socket.create_connection(("127.0.0.3", port(server)), timeout=0.5,
                                     source_address=("127.0.0.2", 0))
        plane.heal()
        peer.settimeout(10)
        assert peer.recv(64) == b"during"   # TCP retransmits once the link is back
    finally:
        for s in (client, peer, server):
            s.close()


def test_random_loss_drops_about_the_given_fraction(plane: PacketPlane) -> None:
    a, b = udp("127.0.0.2"), udp("127.0.0.3")
    b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    try:
        plane.loss(Flow(src="127.0.0.2", dst="127.0.0.3", ports=(port(b),),
                        protocols=("udp",)), 0.5)
        assert plane.confirm()
        assert "--probability 0.5" in plane.listed()[0]
        sent = 1000
        for _ in range(sent):
            a.sendto(b"x", b.getsockname())
        got = _count(b)
        assert 0.35 * sent < got < 0.65 * sent, (got, sent)
    finally:
        a.close()
        b.close()


def test_a_bad_probability_is_refused(plane: PacketPlane) -> None:
    from gossipcert.chaos.packet import PacketPlaneError

    with pytest.raises(PacketPlaneError, match="probability"):
        plane.loss(Flow(src="127.0.0.2", dst="127.0.0.3"), 1.5)


def test_sweep_removes_chains_of_dead_runs_only() -> None:
    need(unavailable_reason())
    code = (
        "import sys\n"
        "from chaos.packet import Flow, PacketPlane\n"
        "p = PacketPlane(sys.argv[1])\n"
        "p.cut(Flow(src='127.0.0.2', dst='127.0.0.3', ports=(1,)))\n"
        "print(p.chain, flush=True)\n"
    )
    label = f"crashed-{uuid.uuid4().hex}"
    out = subprocess.run([sys.executable, "-c", code, label], capture_output=True, text=True,
                         check=True, timeout=60).stdout.strip()
    assert out == chain_name(label)
    assert out in iptables_save()          # the child died without closing
    mine = PacketPlane(f"alive-{uuid.uuid4().hex}")
    try:
        mine.cut(Flow(src="127.0.0.2", dst="127.0.0.3", ports=(2,)))
        removed = sweep_chains()
        assert f"{out}-i" in removed
        assert not any(c.startswith(mine.chain) for c in removed)  # its run is alive
        saved = iptables_save()
        assert out not in saved
        assert mine.chain in saved
    finally:
        mine.close()


# ---- a node in its own network namespace (as a container is) -------------------------


@pytest.fixture
def netns() -> Iterator[tuple[int, str, str]]:
    """A namespace joined to the host by a veth pair: (pid inside, host ip, inner ip)."""
    need(unavailable_reason())
    tag = uuid.uuid4().hex[:6]
    name, host_if, inner_if = f"gc-t{tag}", f"gch{tag}", f"gci{tag}"
    net = random.randrange(16, 250)
    host_ip, inner_ip = f"10.231.{net}.1", f"10.231.{net}.2"
    cmds = [
        ["ip", "netns", "add", name],
        ["ip", "link", "add", host_if, "type", "veth", "peer", "name", inner_if],
        ["ip", "link", "set", inner_if, "netns", name],
        ["ip", "addr", "add", f"{host_ip}/24", "dev", host_if],
        ["ip", "link", "set", host_if, "up"],
        ["ip", "netns", "exec", name, "ip", "addr", "add", f"{inner_ip}/24", "dev", inner_if],
        ["ip", "netns", "exec", name, "ip", "link", "set", inner_if, "up"],
        ["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"],
    ]
    holder: subprocess.Popen[bytes] | None = None
    try:
        for cmd in cmds:
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                need(f"cannot build a network namespace: {' '.join(cmd)}: "
                      f"{proc.stderr.strip()}")
        holder = subprocess.Popen(["ip", "netns", "exec", name, "sleep", "120"])
        time.sleep(0.2)
        yield holder.pid, host_ip, inner_ip
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def _send_from_netns(pid: int, host: str, port_: int, count: int) -> None:
    code = (
        "import socket\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        f"for _ in range({count}):\n"
        "    try:\n"
        f"        s.sendto(b'x', ({host!r}, {port_}))\n"
        "    except PermissionError:\n"
        "        pass\n"
    )
    subprocess.run(["nsenter", "-t", str(pid), "-n", sys.executable, "-c", code],
                   check=True, timeout=30)


def _receive_in_netns(pid: int, host: str, port_: int) -> subprocess.Popen[str]:
    """A receiver inside the namespace that prints how many datagrams came in 1 s."""
    code = (
        "import socket, sys, time\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        f"s.bind(({host!r}, {port_})); s.settimeout(0.05)\n"
        "print('ready', flush=True)\n"
        "n = 0; end = time.monotonic() + 1.0\n"
        "while time.monotonic() < end:\n"
        "    try:\n"
        "        s.recv(64); n += 1\n"
        "    except TimeoutError:\n"
        "        pass\n"
        "print(n, flush=True)\n"
    )
    proc = subprocess.Popen(["nsenter", "-t", str(pid), "-n", sys.executable, "-c", code],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def _count(sock: socket.socket, window_s: float = 0.5) -> int:
    got = 0
    deadline = time.monotonic() + window_s
    while time.monotonic() < deadline:
        try:
            sock.recvfrom(64)
            got += 1
        except TimeoutError:
            continue
    return got


def _host_to_netns(pid: int, host_ip: str, inner_ip: str) -> int:
    port_ = random.randrange(20000, 30000)
    receiver = _receive_in_netns(pid, inner_ip, port_)
    sender = udp(host_ip)
    try:
        for _ in range(10):
            sender.sendto(b"x", (inner_ip, port_))
        out, _ = receiver.communicate(timeout=30)
        return int(out.strip())
    finally:
        sender.close()


@pytest.mark.slow
def test_cuts_inside_a_network_namespace_from_the_host(netns: tuple[int, str, str]) -> None:
    pid, host_ip, inner_ip = netns
    receiver = udp(host_ip)
    plane = PacketPlane(f"test-ns-{uuid.uuid4().hex}")
    try:
        _send_from_netns(pid, host_ip, port(receiver), 10)
        assert _count(receiver) == 10
        assert _host_to_netns(pid, host_ip, inner_ip) == 10
        # Into the namespace: the receiver's INPUT; out of it: the sender's OUTPUT.
        plane.cut(Flow(src=host_ip, dst=inner_ip, netns_pid=pid), tag="host->inner")
        plane.cut(Flow(src=inner_ip, dst=host_ip, netns_pid=pid, hook="OUTPUT"),
                  tag="inner->host")
        assert plane.confirm()
        assert len(plane.listed(pid)) == 4          # tcp and udp, both hooks, in the netns
        assert plane.listed(None) == []             # nothing in the host's tables
        assert plane.chain not in iptables_save()
        assert _host_to_netns(pid, host_ip, inner_ip) == 0
        _send_from_netns(pid, host_ip, port(receiver), 10)
        assert _count(receiver) == 0
        plane.heal()
        assert plane.listed(pid) == []
        assert _host_to_netns(pid, host_ip, inner_ip) == 10
        _send_from_netns(pid, host_ip, port(receiver), 10)
        assert _count(receiver) == 10
    finally:
        plane.close()
        receiver.close()
    inside = subprocess.run(["nsenter", "-t", str(pid), "-n", "iptables-save"],
                            capture_output=True, text=True, check=True).stdout
    assert plane.chain not in inside


# ---- counting what each node sends ------------------------------------------------------


def test_counts_each_senders_gossip_socket_before_cuts_and_through_heals(
    plane: PacketPlane,
) -> None:
    """UDP datagrams and pushed TCP segments from a node's gossip address and port are
    counted, in the raw table before any cut drops them; another socket on the same
    address (another run) is not; healing keeps the counters, closing removes them."""
    from gossipcert.chaos.packet import Sender

    gossip, peer, other = udp("127.0.0.2"), udp("127.0.0.3"), udp("127.0.0.2")
    listener = socket.create_server(("127.0.0.2", port(gossip)))  # its TCP side, same port
    dialer = socket.create_connection(("127.0.0.2", port(gossip)),
                                      source_address=("127.0.0.3", 0))
    accepted, _ = listener.accept()
    try:
        plane.count_senders([Sender("n1", src="127.0.0.2", sport=port(gossip)),
                             Sender("n2", src="127.0.0.3", sport=port(peer))])
        plane.cut(Flow(src="127.0.0.2", dst="127.0.0.3", ports=(port(gossip), port(peer))))
        assert delivered(gossip, peer, count=5) == 0      # dropped, yet sent: counted
        assert delivered(other, peer, count=7) == 0        # not n1's gossip socket
        plane.heal()
        accepted.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(3):
            accepted.sendall(b"0123456789")                # n1 answers on a connection
            time.sleep(0.02)
        counted = plane.counters()
        assert counted["n1"]["udp_packets"] == 5
        assert counted["n1"]["udp_bytes"] == 5 * (20 + 8 + 16)  # whole IP packets
        assert counted["n1"]["tcp_packets"] == 3
        assert counted["n2"] == {"udp_packets": 0, "udp_bytes": 0, "tcp_packets": 0,
                                 "tcp_bytes": 0}
        assert plane.count_chain in iptables_save()
    finally:
        for s in (gossip, peer, other, listener, dialer, accepted):
            s.close()
    plane.close()
    assert plane.count_chain not in iptables_save()
    assert plane.counters() == {}


def test_sweep_removes_the_counting_chain_of_a_dead_run() -> None:
    need(unavailable_reason())
    code = (
        "import sys\n"
        "from chaos.packet import PacketPlane, Sender\n"
        "p = PacketPlane(sys.argv[1])\n"
        "p.count_senders([Sender('n1', src='127.0.0.2', sport=1)])\n"
        "print(p.count_chain, flush=True)\n"
    )
    label = f"crashed-count-{uuid.uuid4().hex}"
    out = subprocess.run([sys.executable, "-c", code, label], capture_output=True, text=True,
                         check=True, timeout=60).stdout.strip()
    assert out == f"{chain_name(label)}-c" and out in iptables_save()
    assert out in sweep_chains()
    assert out not in iptables_save()
