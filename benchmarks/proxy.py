"""Cost of the link plane: round trips and bulk throughput through the Toxiproxy-compatible
server, each against a direct loopback connection measured in the same run; then UDP round
trips through a UDP proxy (the ``/udp/proxies`` extension), against direct UDP.

    .venv/bin/python benchmarks/proxy.py [--pings 5000] [--bulk-mib 512] [--udp-pings 5000]

The proxy server, the echo server and the sink each run in their own process (as in a
real run), so the client's interpreter does not share a GIL with them.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import time

from gossipcert.chaos.procutil import free_port
from gossipcert.chaos.toxiproxy_client import ToxiproxyClient

ECHO = """
import socket, sys, threading
srv = socket.create_server(("127.0.0.1", int(sys.argv[1])))
print("ready", flush=True)
def serve(c):
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while True:
        d = c.recv(1 << 20)
        if not d:
            c.close()
            return
        if sys.argv[2] == "echo":
            c.sendall(d)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""


UDP_ECHO = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
print("ready", flush=True)
while True:
    d, a = s.recvfrom(65535)
    s.sendto(d, a)
"""


def start(argv: list[str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.readline()
    return proc


def pingpong(port: int, count: int) -> list[float]:
    """Round-trip times (us) of 64-byte messages on one connection."""
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    msg = b"x" * 64
    out = []
    for i in range(count + 200):
        t0 = time.perf_counter()
        s.sendall(msg)
        got = 0
        while got < 64:
            got += len(s.recv(64 - got))
        if i >= 200:  # warm-up
            out.append((time.perf_counter() - t0) * 1e6)
    s.close()
    return out


def bulk(port: int, mib: int) -> float:
    """MB/s of ``mib`` 1 MiB writes into a sink."""
    s = socket.create_connection(("127.0.0.1", port))
    chunk = b"y" * (1 << 20)
    t0 = time.perf_counter()
    for _ in range(mib):
        s.sendall(chunk)
    s.shutdown(socket.SHUT_WR)
    s.recv(1)  # the sink closes once it has read everything
    took = time.perf_counter() - t0
    s.close()
    return mib * (1 << 20) / took / 1e6


def udp_pingpong(port: int, count: int) -> list[float]:
    """Round-trip times (us) of 64-byte datagrams, one outstanding at a time."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(("127.0.0.1", port))
    s.settimeout(1.0)
    msg = b"u" * 64
    out = []
    for i in range(count + 200):
        t0 = time.perf_counter()
        s.send(msg)
        try:
            s.recv(65535)
        except TimeoutError:
            continue  # a datagram lost under load: not a round trip
        if i >= 200:
            out.append((time.perf_counter() - t0) * 1e6)
    s.close()
    return out


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


def free_udp_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pings", type=int, default=5000)
    parser.add_argument("--bulk-mib", type=int, default=512)
    parser.add_argument("--udp-pings", type=int, default=5000)
    args = parser.parse_args()
    echo_port, sink_port, api_port = (free_port("127.0.0.1") for _ in range(3))
    udp_port = free_udp_port()
    procs = [
        start([sys.executable, "-c", ECHO, str(echo_port), "echo"]),
        start([sys.executable, "-c", ECHO, str(sink_port), "sink"]),
        start([sys.executable, "-c", UDP_ECHO, str(udp_port)]),
        start([sys.executable, "-m", "gossipcert.chaos.toxiproxy", "serve", "--listen",
               f"127.0.0.1:{api_port}"]),
    ]
    try:
        client = ToxiproxyClient(f"http://127.0.0.1:{api_port}")
        echo_proxy = client.create_proxy("echo", "127.0.0.1:0", f"127.0.0.1:{echo_port}")
        sink_proxy = client.create_proxy("sink", "127.0.0.1:0", f"127.0.0.1:{sink_port}")
        p_echo = int(echo_proxy["listen"].rpartition(":")[2])
        p_sink = int(sink_proxy["listen"].rpartition(":")[2])
        direct = pingpong(echo_port, args.pings)
        proxied = pingpong(p_echo, args.pings)
        d50, d99 = pct(direct, 50), pct(direct, 99)
        x50, x99 = pct(proxied, 50), pct(proxied, 99)
        print(f"round trip direct  p50 {d50:7.1f} us  p99 {d99:7.1f} us")
        print(f"round trip proxied p50 {x50:7.1f} us  p99 {x99:7.1f} us")
        print(f"added              p50 {x50 - d50:7.1f} us  p99 {x99 - d99:7.1f} us")
        direct_bw = bulk(sink_port, args.bulk_mib)
        proxied_bw = bulk(p_sink, args.bulk_mib)
        client.add_toxic("sink", "latency", {"latency": 100}, stream="upstream")
        latency_bw = bulk(p_sink, args.bulk_mib)
        print(f"bulk direct        {direct_bw:7.0f} MB/s")
        print(f"bulk proxied       {proxied_bw:7.0f} MB/s  ratio {proxied_bw / direct_bw:.2f}")
        print(f"bulk 100 ms toxic  {latency_bw:7.0f} MB/s  ratio {latency_bw / direct_bw:.2f}")
        if args.udp_pings:
            udp_proxy = client.create_udp_proxy("udp-echo", "127.0.0.1:0",
                                                f"127.0.0.1:{udp_port}")
            p_udp = int(udp_proxy["listen"].rpartition(":")[2])
            u_direct = udp_pingpong(udp_port, args.udp_pings)
            u_proxied = udp_pingpong(p_udp, args.udp_pings)
            u50, u99 = pct(u_direct, 50), pct(u_direct, 99)
            v50, v99 = pct(u_proxied, 50), pct(u_proxied, 99)
            print(f"udp direct         p50 {u50:7.1f} us  p99 {u99:7.1f} us")
            print(f"udp proxied        p50 {v50:7.1f} us  p99 {v99:7.1f} us")
            print(f"udp added          p50 {v50 - u50:7.1f} us  p99 {v99 - u99:7.1f} us")
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
