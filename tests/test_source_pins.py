"""Telling apart the TCP flows of nodes on loopback addresses that dial from 127.0.0.1.

A node listening on 127.0.0.x still dials from 127.0.0.1 (the kernel's source for the
whole 127/8 route), as Serf's Go dialer does; address rules then miss its connections.
Real processes in their own cgroups show the problem, the pin (SNAT of the cgroup's TCP
to the node's address) and a one-way cut that holds whichever side opens the connection.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from gossipcert.chaos.packet import Flow, PacketPlane, SourcePin, unavailable_reason
from gossipcert.chaos.procutil import child_preexec, free_port
from gossipcert.harness.drivers.cgroups import RunCgroups, cgroup2_root, sweep_cgroups
from host_tools import need

pytestmark = pytest.mark.slow

A, B = "127.0.0.21", "127.0.0.22"

# A node: serves on its address (answering each connection with the peer address it
# saw), and dials the other node on demand (argv: listen addr, then lines on stdin).
NODE = r"""
import socket, sys, threading
host, port = sys.argv[1], int(sys.argv[2])
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((host, port)); srv.listen()
def serve():
    while True:
        conn, peer = srv.accept()
        conn.sendall(f"{peer[0]}\n".encode()); conn.close()
threading.Thread(target=serve, daemon=True).start()
print("ready", flush=True)
for line in sys.stdin:
    h, p = line.split()
    try:
        c = socket.create_connection((h, int(p)), timeout=1.5)
        c.settimeout(1.5)
        print("saw", c.recv(100).decode().strip(), flush=True)
    except OSError as exc:
        print("failed", type(exc).__name__, flush=True)
"""




class Node:
    def __init__(self, host: str, procs_file: Path) -> None:
        self.host, self.port = host, free_port(host)
        self.proc = subprocess.Popen([sys.executable, "-c", NODE, host, str(self.port)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     preexec_fn=child_preexec(procs_file))
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    def dial(self, other: Node) -> str:
        """What the other node saw as our address, or ``failed ...``."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{other.host} {other.port}\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(5)


@pytest.fixture
def setup() -> Iterator[tuple[PacketPlane, RunCgroups]]:
    need(unavailable_reason())
    if cgroup2_root() is None:
        need("cgroup v2 is not mounted writable")
    label = f"pins-{uuid.uuid4().hex[:8]}"
    plane, groups = PacketPlane(label), RunCgroups.open(label)
    assert groups is not None
    try:
        yield plane, groups
    finally:
        plane.close()
        groups.remove()
    assert plane.pin_chain not in subprocess.run(["iptables-save", "-t", "nat"], text=True,
                                                 capture_output=True).stdout
    assert not groups.base.exists()


def test_pinned_nodes_dial_from_their_own_address_and_a_one_way_cut_holds_both_ways(
    setup: tuple[PacketPlane, RunCgroups],
) -> None:
    plane, groups = setup
    a, b = Node(A, groups.procs_file("a")), Node(B, groups.procs_file("b"))
    try:
        # Unpinned, the listener sees the default loopback source: no rule on A matches.
        assert a.dial(b) == "saw 127.0.0.1"
        plane.pin_sources([SourcePin("a", groups.path("a"), A),
                           SourcePin("b", groups.path("b"), B)])
        assert a.dial(b) == f"saw {A}"
        assert b.dial(a) == f"saw {B}"

        # Cut a -> b only. A connection a opens never gets its SYN through; one b opens
        # gets no SYN-ACK back (a's answers, matched by the connection's reply tuple).
        cut = Flow(src=A, dst=B, ports=(a.port, b.port), nat_replies=True)
        plane.cut(cut, tag="cut a->b")
        assert plane.confirm()
        assert a.dial(b).startswith("failed")
        assert b.dial(a).startswith("failed")
        # The other direction of other pairs is untouched: b still reaches a third node.
        c = Node("127.0.0.23", groups.procs_file("c"))
        try:
            plane.pin_sources([SourcePin("c", groups.path("c"), "127.0.0.23")])
            assert b.dial(c) == f"saw {B}"
            assert c.dial(a) == "saw 127.0.0.23"
        finally:
            c.stop()
        plane.heal()
        assert a.dial(b) == f"saw {A}" and b.dial(a) == f"saw {B}"
    finally:
        a.stop()
        b.stop()


def test_without_reply_matching_the_cut_leaks_answers() -> None:
    """The reply match is what holds the cut for connections the far side opens."""
    with_replies = Flow(src=A, dst=B, ports=(1, 2), nat_replies=True).matches()
    without = Flow(src=A, dst=B, ports=(1, 2)).matches()
    assert len(with_replies) == len(without) + 1
    assert with_replies[-1][-4:] == ["--ctdir", "REPLY", "--ctrepldst", B]


def test_sweep_keeps_live_runs_groups() -> None:
    if cgroup2_root() is None:
        need("cgroup v2 is not mounted writable")
    groups = RunCgroups.open(f"gc-1-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    assert groups is not None
    groups.path("n1")
    try:
        assert groups.base.name not in sweep_cgroups(lambda label: False)
        assert groups.base.exists()
        assert groups.base.name in sweep_cgroups(lambda label: label == groups.base.name)
        assert not groups.base.exists()
    finally:
        groups.remove()
