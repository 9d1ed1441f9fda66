"""Cost and accuracy of the packet plane's NFQUEUE delay line, beside the link plane's proxy
(the Toxiproxy-compatible server) at the same delay, in one run (root; the line needs
iptables and NFQUEUE):

    flock /tmp/gossipcert-cpu.lock .venv/bin/python benchmarks/delayline.py \\
        [--pings 200] [--seconds 1.0] [--rates 2000,5000,10000,20000,40000]

* accuracy: round trips of an echo with 100 ms on the way there only, UDP and TCP; the
  error is the round trip minus 100 ms (loopback's own round trip included);
* throughput: datagrams sent at a paced rate for ``--seconds`` through a 0 ms line (every
  packet still goes through the queue and our process) and through a UDP proxy with no
  toxic; each datagram carries its send time, the receiver (its own process) reports the
  one-way time added (p50, p99) and how many arrived: the highest rate before the time
  added grows is the throughput;
* CPU per packet: the line's (or the proxy server's) user+system CPU time over the
  packets it handled in the throughput runs.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from gossipcert.chaos.delayline import LineFaults, LineProcess
from gossipcert.chaos.packet import Flow, PacketPlane
from gossipcert.chaos.procutil import free_port
from gossipcert.chaos.toxiproxy_client import ToxiproxyClient

A, B = "127.0.0.2", "127.0.0.3"
TICKS = os.sysconf("SC_CLK_TCK")

RECEIVER = """
import socket, struct, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(1.0)
print("ready", flush=True)
added = []
try:
    while True:
        d = s.recv(2048)
        added.append((time.monotonic() - struct.unpack("!d", d[:8])[0]) * 1e6)
except TimeoutError:
    pass
added.sort()
n = len(added)
p = lambda q: added[min(n - 1, int(q * n))] if n else float("nan")
print(n, p(0.5), p(0.99), flush=True)
"""


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def udp_rtts(target: tuple[str, int], count: int, src: str = A) -> list[float]:
    """ms; the echo is a thread answering on ``target``'s socket owner (see callers)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, 0))
    s.settimeout(2.0)
    out = []
    for i in range(count):
        t = time.monotonic()
        s.sendto(i.to_bytes(4, "big"), target)
        s.recv(64)
        out.append((time.monotonic() - t) * 1000)
    s.close()
    return out


def tcp_rtts(target: tuple[str, int], count: int, src: str = A) -> list[float]:
    s = socket.socket()
    s.bind((src, 0))
    s.connect(target)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    out = []
    for _ in range(count):
        t = time.monotonic()
        s.sendall(b"ping")
        s.recv(64)
        out.append((time.monotonic() - t) * 1000)
    s.close()
    return out


def echo_servers(host: str) -> tuple[int, int]:
    """A UDP and a TCP echo on ``host`` (threads of this process); their ports."""
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind((host, 0))
    t = socket.create_server((host, 0))

    def udp() -> None:
        while True:
            d, a = u.recvfrom(64)
            u.sendto(d, a)

    def tcp() -> None:
        while True:
            c, _ = t.accept()
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=lambda c=c: _serve(c), daemon=True).start()

    threading.Thread(target=udp, daemon=True).start()
    threading.Thread(target=tcp, daemon=True).start()
    return u.getsockname()[1], t.getsockname()[1]


def _serve(c: socket.socket) -> None:
    while d := c.recv(64):
        c.sendall(d)


def blast(target: tuple[str, int], rate: int, seconds: float, recv_port: int) -> str:
    """Paced datagrams at ``rate``/s; the receiver process's count, p50 and p99 added."""
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, B, str(recv_port)],
                                stdout=subprocess.PIPE, text=True)
    assert receiver.stdout is not None
    receiver.stdout.readline()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((A, 0))
    total = int(rate * seconds)
    start = time.monotonic()
    for i in range(total):
        due = start + i / rate
        while time.monotonic() < due:
            pass
        s.sendto(struct.pack("!d", time.monotonic()) + b"." * 56, target)
    sent_rate = total / (time.monotonic() - start)
    s.close()
    out, _ = receiver.communicate(timeout=30)
    n, p50, p99 = out.split()
    return (f"sent {sent_rate:7.0f}/s, {int(n) / total:6.1%} arrived, added p50 "
            f"{float(p50):6.0f} us p99 {float(p99):6.0f} us")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pings", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--rates", default="2000,5000,10000,20000,40000")
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    udp_port, tcp_port = echo_servers(B)
    label = f"bench-dl-{uuid.uuid4().hex}"
    plane = PacketPlane(label)
    api_port = free_port("127.0.0.1")
    server = subprocess.Popen([sys.executable, "-m", "gossipcert.chaos.toxiproxy", "serve",
                               "--listen", f"127.0.0.1:{api_port}"], stdout=subprocess.PIPE,
                              text=True)
    assert server.stdout is not None
    server.stdout.readline()
    env = dict(os.environ)
    try:
        print("== accuracy: 100 ms one way, round trips of an echo (ms) ==")
        line = LineProcess({2001: LineFaults(latency_ms=100), 2002: LineFaults(latency_ms=100)},
                           None, env)
        plane.queue(Flow(src=A, dst=B, ports=(udp_port,), protocols=("udp",)), 2001)
        plane.queue(Flow(src=A, dst=B, ports=(tcp_port,), protocols=("tcp",)), 2002)
        for name, rtts in (("udp", udp_rtts((B, udp_port), args.pings)),
                           ("tcp", tcp_rtts((B, tcp_port), args.pings))):
            err = [r - 100 for r in rtts]
            print(f"nfqueue   {name}  error p50 {statistics.median(err):6.2f}  "
                  f"p99 {pct(err, 0.99):6.2f}  min {min(err):6.2f}")
        plane.heal()
        line.stop()
        client = ToxiproxyClient(f"http://127.0.0.1:{api_port}")
        tp = client.create_proxy("tcp-echo", f"{A}:0", f"{B}:{tcp_port}")
        client.add_toxic("tcp-echo", "latency", {"latency": 100}, stream="upstream")
        up = client.create_udp_proxy("udp-echo", f"{A}:0", f"{B}:{udp_port}")
        # A datagram proxy's latency toxic delays what comes back (downstream): one way.
        client.call("POST", "/udp/proxies/udp-echo/toxics",
                    {"type": "latency", "attributes": {"latency": 100}})
        for name, rtts in (
                ("udp", udp_rtts(_addr(up["listen"]), args.pings)),
                ("tcp", tcp_rtts(_addr(tp["listen"]), args.pings))):
            err = [r - 100 for r in rtts]
            print(f"toxiproxy {name}  error p50 {statistics.median(err):6.2f}  "
                  f"p99 {pct(err, 0.99):6.2f}  min {min(err):6.2f}")

        print(f"== throughput: paced datagrams for {args.seconds:g} s, nothing delayed ==")
        sink = free_port(B)
        line = LineProcess({2003: LineFaults()}, None, env)
        plane.queue(Flow(src=A, dst=B, ports=(sink,), protocols=("udp",)), 2003)
        cpu0, sent = cpu_s(line.proc.pid), 0
        for rate in rates:
            print(f"nfqueue   {rate:6d}/s  {blast((B, sink), rate, args.seconds, sink)}")
            sent += int(rate * args.seconds)
        cpu = cpu_s(line.proc.pid) - cpu0
        plane.heal()
        stats = line.stop()
        print(f"nfqueue   CPU {cpu:.2f} s for {stats.get('received', sent)} packets: "
              f"{cpu / max(1, stats.get('received', sent)) * 1e6:.1f} us/packet")
        direct = free_port(B)
        for rate in rates[-1:]:
            print(f"direct    {rate:6d}/s  {blast((B, direct), rate, args.seconds, direct)}")
        target = free_port(B)
        bp = client.create_udp_proxy("udp-sink", f"{A}:0", f"{B}:{target}")
        cpu0, sent = cpu_s(server.pid), 0
        for rate in rates:
            print(f"toxiproxy {rate:6d}/s  "
                  f"{blast(_addr(bp['listen']), rate, args.seconds, target)}")
            sent += int(rate * args.seconds)
        cpu = cpu_s(server.pid) - cpu0
        print(f"toxiproxy CPU {cpu:.2f} s for {sent} datagrams: {cpu / sent * 1e6:.1f} us/packet")
    finally:
        plane.close()
        server.kill()
        server.wait()


def _addr(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host, int(port)


if __name__ == "__main__":
    main()
