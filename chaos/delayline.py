"""A user-space delay line: latency, jitter, loss, duplication, reordering and a bandwidth
cap on the packets iptables hands it through ``NFQUEUE``, for TCP and UDP alike.

The kernel of the project's machines has no ``netem`` queueing discipline; the
``NFQUEUE`` target works everywhere ``iptables`` does. A rule ``-j NFQUEUE --queue-num N``
(in a run's own chains, :mod:`chaos.packet`) hands each packet of a directed link to queue
``N``; this module's process, bound to that queue, holds the packet and gives its verdict
later: ``NF_ACCEPT`` when its delay is over, ``NF_DROP`` when it is lost. It speaks
``nfnetlink_queue`` itself over an ``AF_NETLINK`` socket (no C library, no compiler), so
it runs unchanged inside a container's network namespace as
``nsenter -t PID -n python -m gossipcert.chaos.delayline ...``.

Facts from the kernel (``net/netfilter/nfnetlink_queue.c``, ``include/uapi/linux/
netfilter/nfnetlink_queue.h``, ``iptables-extensions(8)``):

* a verdict names a packet by its id and the kernel finds it in the queue's list, so
  verdicts may come in any order (reordering is a verdict given early);
* the queue holds at most ``NFQA_CFG_QUEUE_MAXLEN`` packets; past that the kernel drops
  new ones (as netem's ``limit`` does), counted as ``queue_dropped`` in
  ``/proc/net/netfilter/nfnetlink_queue``;
* with no process bound, a rule with ``--queue-bypass`` lets packets through and one
  without drops them; when the bound socket closes (the process dies) the packets it held
  are dropped. The packet plane uses ``--queue-bypass``: a dead line then weakens the
  fault rather than cutting the link, and the harness checks the line is alive whenever
  it confirms a fault and when it heals (a dead line is a harness error, never a
  silently healthy link);
* without ``NFQA_CFG_F_GSO`` the kernel segments large packets and completes partial
  checksums before queueing, so a copied payload is a valid IP packet.

Duplication needs the packet twice: the copy is sent again through a raw socket
(``IP_HDRINCL``) in the same namespace, with a firewall mark (:data:`DUP_MARK`) the
queueing rule excludes, so the copy is not queued a second time. It needs
``CAP_NET_RAW``, which root has.

The process prints ``ready`` once every queue is bound, and a ``stats`` line with its
counters when it ends (SIGTERM: every held packet is released first).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import functools
import heapq
import os
import random
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from gossipcert.chaos.packet import DUP_MARK, unavailable_reason

__all__ = [
    "DUP_MARK", "DelayLine", "LineFaults", "LineProcess", "delay_mechanism",
    "delay_unavailable_reason", "main", "netem_available", "netem_commands", "netem_heal",
    "netem_root", "parse_queue", "queue_arg",
]

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NLMSG_ERROR = 2
NLMSG_DONE = 3
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_PAYLOAD = 10
NFQA_CAP_LEN = 13
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQNL_CFG_CMD_BIND = 1
NFQNL_CFG_CMD_UNBIND = 2
NFQNL_COPY_PACKET = 2
NF_DROP = 0
NF_ACCEPT = 1
SOL_NETLINK = 270
NETLINK_NO_ENOBUFS = 5
SO_MARK = 36

QUEUE_MAXLEN = 8192  # packets one queue holds (about 80 ms at 100k packets/s)
HEADER_COPY = 128  # bytes of each packet copied to us when we need no payload
RCVBUF = 8 << 20  # the socket's buffer: packets the kernel queues to us, not yet read
SO_RCVBUFFORCE = 33  # past net.core.rmem_max (CAP_NET_ADMIN)
MESSAGE_MAX = 0x10000 + 4096  # one packet message: a whole IP packet and its attributes


@dataclass(frozen=True)
class LineFaults:
    """What one queue (one directed link) does to its packets, as netem would: a fixed
    ``latency_ms`` plus a uniform ``jitter_ms`` either way, kept in order unless
    ``reorder`` (a share of packets that skip the delay, as netem's ``reorder``; a jitter
    larger than the latency is cut at no delay, as netem and the link plane do); drop
    with ``loss``, send twice with ``duplicate`` (probabilities); ``rate_kbit`` caps the
    link's bandwidth (0: none), each packet waiting for the one before to be sent."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    rate_kbit: float = 0.0

    def __post_init__(self) -> None:
        for name in ("loss", "duplicate", "reorder"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value}")
        for name in ("latency_ms", "jitter_ms", "rate_kbit"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.reorder and not self.latency_ms:
            raise ValueError("reorder needs a latency to reorder against")


_FIELDS = ("latency_ms", "jitter_ms", "loss", "duplicate", "reorder", "rate_kbit")


def queue_arg(queue: int, faults: LineFaults) -> str:
    """The command-line form of one queue: ``N:latency_ms=100,jitter_ms=20,...``."""
    values = ",".join(f"{k}={getattr(faults, k):g}" for k in _FIELDS if getattr(faults, k))
    return f"{queue}:{values}"


def parse_queue(text: str) -> tuple[int, LineFaults]:
    """Parse :func:`queue_arg`'s form (ValueError when it is not one)."""
    num, _, rest = text.partition(":")
    queue = int(num)
    if not 0 <= queue < 65536:
        raise ValueError(f"queue number {queue} out of range")
    values: dict[str, float] = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq or key not in _FIELDS:
            raise ValueError(f"unknown fault {item!r} (one of {', '.join(_FIELDS)})")
        values[key] = float(value)
    return queue, LineFaults(**values)


# ---- netlink -------------------------------------------------------------------------


def _attr(kind: int, payload: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(payload), kind) + payload
    return raw + b"\0" * (-len(raw) % 4)


def _message(msg: int, queue: int, attrs: bytes, flags: int = NLM_F_REQUEST, seq: int = 0,
             family: int = socket.AF_UNSPEC) -> bytes:
    body = struct.pack("=BBH", family, 0, socket.htons(queue)) + attrs
    return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg,
                       flags, seq, 0) + body


def _attrs(data: bytes, offset: int, end: int) -> dict[int, bytes]:
    out = {}
    while offset + 4 <= end:
        length, kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            break
        out[kind & 0x7FFF] = data[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return out


class QueueError(OSError):
    """The kernel refused to bind or configure a queue."""


@dataclass(order=True)
class _Held:
    release: float
    seq: int
    queue: int = field(compare=False)
    packet_id: int = field(compare=False)
    verdict: int = field(compare=False)
    copy: bytes | None = field(compare=False)


@dataclass
class Stats:
    received: int = 0
    accepted: int = 0
    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0
    max_held: int = 0

    def line(self) -> str:
        return "stats " + " ".join(f"{k}={v}" for k, v in vars(self).items())


class DelayLine:
    """The queues of one network namespace and the packets they hold."""

    def __init__(self, queues: dict[int, LineFaults], seed: int | None = None,
                 maxlen: int = QUEUE_MAXLEN) -> None:
        self.queues = queues
        self.rng = random.Random(seed)
        self.stats = Stats()
        self.held: list[_Held] = []
        self._seq = 0
        self._last: dict[int, float] = {}  # per queue: when its last packet leaves
        self._busy: dict[int, float] = {}  # per queue: when the capped link is free
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        with contextlib.suppress(OSError):
            self.sock.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)
        self.sock.bind((0, 0))
        self.raw: socket.socket | None = None
        if any(f.duplicate for f in queues.values()):
            self.raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
            self.raw.setsockopt(socket.SOL_SOCKET, SO_MARK, DUP_MARK)
        for queue, faults in queues.items():
            self._config(queue, _attr(NFQA_CFG_CMD, struct.pack(
                "!BxH", NFQNL_CFG_CMD_BIND, socket.AF_INET)))
            copy = 0xFFFF if faults.duplicate else HEADER_COPY
            self._config(queue, _attr(NFQA_CFG_PARAMS, struct.pack(
                "!IB", copy, NFQNL_COPY_PACKET)))
            self._config(queue, _attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", maxlen)))

    def _config(self, queue: int, attrs: bytes) -> None:
        """Send one config message and wait for the kernel's acknowledgement."""
        self._seq += 1
        self.sock.send(_message(NFQNL_MSG_CONFIG, queue, attrs, NLM_F_REQUEST | NLM_F_ACK,
                                self._seq))
        while True:
            data = self.sock.recv(65536)
            offset = 0
            while offset + 16 <= len(data):
                length, kind, _, seq, _ = struct.unpack_from("=IHHII", data, offset)
                if kind == NLMSG_ERROR and seq == self._seq:
                    (err,) = struct.unpack_from("=i", data, offset + 16)
                    if err:
                        raise QueueError(-err, f"queue {queue}: {os.strerror(-err)}")
                    return
                offset += (length + 3) & ~3

    def close(self) -> None:
        """Release what is held (accepted now), unbind, close the sockets."""
        while self.held:
            self._give(heapq.heappop(self.held))
        for queue in self.queues:
            with contextlib.suppress(OSError):
                self.sock.send(_message(NFQNL_MSG_CONFIG, queue, _attr(
                    NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_UNBIND, socket.AF_INET))))
        self.sock.close()
        if self.raw is not None:
            self.raw.close()

    # ---- packets -------------------------------------------------------------------

    def _schedule(self, queue: int, packet_id: int, length: int, payload: bytes | None,
                  now: float) -> _Held:
        """When a packet leaves, and how (what netem would do to it)."""
        faults = self.queues[queue]
        self._seq += 1
        if faults.loss and self.rng.random() < faults.loss:
            return _Held(now, self._seq, queue, packet_id, NF_DROP, None)
        start = now
        if faults.rate_kbit:
            start = max(now, self._busy.get(queue, 0.0))
            self._busy[queue] = start + length * 8 / (faults.rate_kbit * 1000)
            start = self._busy[queue]
        copy = payload if faults.duplicate and self.rng.random() < faults.duplicate else None
        if faults.reorder and self.rng.random() < faults.reorder:
            self.stats.reordered += 1
            return _Held(start, self._seq, queue, packet_id, NF_ACCEPT, copy)
        delay = faults.latency_ms
        if faults.jitter_ms:
            delay = max(0.0, delay + self.rng.uniform(-faults.jitter_ms, faults.jitter_ms))
        # In order on the link, like a wire: jitter spreads packets, never swaps them.
        release = max(start + delay / 1000.0, self._last.get(queue, 0.0))
        self._last[queue] = release
        return _Held(release, self._seq, queue, packet_id, NF_ACCEPT, copy)

    def _give(self, held: _Held) -> None:
        verdict = _attr(NFQA_VERDICT_HDR, struct.pack("!II", held.verdict, held.packet_id))
        self.sock.send(_message(NFQNL_MSG_VERDICT, held.queue, verdict))
        if held.verdict == NF_DROP:
            self.stats.dropped += 1
            return
        self.stats.accepted += 1
        if held.copy is not None and self.raw is not None and len(held.copy) >= 20:
            dst = socket.inet_ntoa(held.copy[16:20])
            with contextlib.suppress(OSError):
                self.raw.sendto(held.copy, (dst, 0))
                self.stats.duplicated += 1

    def _receive(self, data: bytes, now: float) -> None:
        offset = 0
        while offset + 16 <= len(data):
            length, kind, _, _, _ = struct.unpack_from("=IHHII", data, offset)
            if length < 16:
                break
            if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                (res_id,) = struct.unpack_from("!H", data, offset + 18)
                attrs = _attrs(data, offset + 20, offset + length)
                header = attrs.get(NFQA_PACKET_HDR)
                if header is not None and res_id in self.queues:
                    (packet_id,) = struct.unpack_from("!I", header)
                    payload = attrs.get(NFQA_PAYLOAD, b"")
                    cap = attrs.get(NFQA_CAP_LEN)
                    size = struct.unpack("!I", cap)[0] if cap else len(payload)
                    self.stats.received += 1
                    held = self._schedule(res_id, packet_id, size, payload, now)
                    if held.release <= now:
                        self._give(held)
                    else:
                        heapq.heappush(self.held, held)
                        self.stats.max_held = max(self.stats.max_held, len(self.held))
            offset += (length + 3) & ~3

    def run(self, stop: list[bool]) -> None:
        """Hold and release packets until ``stop[0]`` is set."""
        fd = self.sock.fileno()
        while not stop[0]:
            now = time.monotonic()
            while self.held and self.held[0].release <= now:
                self._give(heapq.heappop(self.held))
            timeout = (self.held[0].release - now) if self.held else 0.5
            try:
                ready, _, _ = select.select([fd], [], [], max(0.0, timeout))
            except InterruptedError:
                continue
            if not ready:
                continue
            try:
                while True:
                    data = self.sock.recv(MESSAGE_MAX, socket.MSG_DONTWAIT)
                    self._receive(data, time.monotonic())
            except (BlockingIOError, InterruptedError):
                pass


# ---- the harness's side: which mechanism, and a line process per namespace ------------

NETEM_PROBE = ["unshare", "--net", "tc", "qdisc", "add", "dev", "lo", "root", "netem",
               "delay", "1ms"]


@functools.cache
def netem_available() -> bool:
    """Whether the kernel has netem: a netem qdisc added on the loopback of a namespace
    made for the probe (``unshare --net``), which goes with the probe's process, so
    nothing is left behind. Asked once per harness process."""
    if os.geteuid() != 0 or shutil.which("tc") is None or shutil.which("unshare") is None:
        return False
    try:
        proc = subprocess.run(NETEM_PROBE, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


@functools.cache
def _nfqueue_reason() -> str | None:
    """Why no queue can be bound here (None: one can): bind a queue and unbind it. A
    queue another process holds (EBUSY) proves the kernel has NFQUEUE too."""
    queue = 65000 + os.getpid() % 500
    try:
        line = DelayLine({queue: LineFaults()})
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            return None
        return (f"NFQUEUE is not available ({exc}; kernel module nfnetlink_queue, "
                "CAP_NET_ADMIN)")
    line.close()
    return None


def delay_mechanism() -> str:
    """Which mechanism delays packets here: ``netem`` where the kernel has it, else the
    NFQUEUE delay line (``nfqueue``)."""
    return "netem" if netem_available() else "nfqueue"


def delay_unavailable_reason() -> str | None:
    """Why the packet plane cannot delay packets on this machine, or None when it can."""
    reason = unavailable_reason()
    if reason is not None:
        return reason
    return None if netem_available() else _nfqueue_reason()


def netem_commands(dev: str, band: int, src: str | None, dst: str | None,
                   faults: LineFaults) -> list[list[str]]:
    """``tc`` commands that give one directed link its own netem qdisc on the egress of
    ``dev`` (an HTB class per link, a u32 filter on its addresses); the root qdisc and the
    default class are :func:`netem_root`'s. ``band`` numbers the link's class (1:band)."""
    netem = ["netem", "limit", str(QUEUE_MAXLEN)]
    if faults.latency_ms:
        netem += ["delay", f"{faults.latency_ms:g}ms"]
        if faults.jitter_ms:
            netem += [f"{faults.jitter_ms:g}ms"]
    if faults.loss:
        netem += ["loss", f"{faults.loss * 100:g}%"]
    if faults.duplicate:
        netem += ["duplicate", f"{faults.duplicate * 100:g}%"]
    if faults.reorder:
        netem += ["reorder", f"{faults.reorder * 100:g}%"]
    if faults.rate_kbit:
        netem += ["rate", f"{faults.rate_kbit:g}kbit"]
    match: list[str] = []
    if src:
        match += ["match", "ip", "src", f"{src}/32"]
    if dst:
        match += ["match", "ip", "dst", f"{dst}/32"]
    return [
        ["tc", "class", "add", "dev", dev, "parent", "1:", "classid", f"1:{band:x}",
         "htb", "rate", "100gbit"],
        ["tc", "qdisc", "add", "dev", dev, "parent", f"1:{band:x}", "handle", f"{band:x}:",
         *netem],
        ["tc", "filter", "add", "dev", dev, "parent", "1:", "protocol", "ip", "prio", "1",
         "u32", *match, "flowid", f"1:{band:x}"],
    ]


def netem_root(dev: str) -> list[list[str]]:
    """The root of :func:`netem_commands`: HTB whose default class (1:1) is unlimited."""
    return [["tc", "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", "1"],
            ["tc", "class", "add", "dev", dev, "parent", "1:", "classid", "1:1", "htb",
             "rate", "100gbit"]]


def netem_heal(dev: str) -> list[str]:
    """Removing the root qdisc removes every class, netem and filter under it."""
    return ["tc", "qdisc", "del", "dev", dev, "root"]


class LineError(OSError):
    """A delay line did not start, or is no longer running."""


READY_TIMEOUT_S = 15.0


class LineProcess:
    """One delay-line process for the queues of one network namespace (``netns_pid``,
    None: the host's), started with ``nsenter`` when it is another namespace. It carries
    the run label in its environment and dies with the harness, so a sweep of a crashed
    run finds and kills it; its queue rules live in the run's chains, which heal and the
    sweep of chains remove."""

    def __init__(self, queues: dict[int, LineFaults], netns_pid: int | None,
                 env: dict[str, str], seed: int | None = None) -> None:
        from gossipcert.chaos.procutil import child_preexec

        self.queues = queues
        self.netns_pid = netns_pid
        argv = [sys.executable, "-m", "gossipcert.chaos.delayline"]
        for queue, faults in queues.items():
            argv += ["--queue", queue_arg(queue, faults)]
        if seed is not None:
            argv += ["--seed", str(seed)]
        if netns_pid is not None:
            argv = ["nsenter", "-t", str(netns_pid), "-n", *argv]
        self.argv = argv
        self.stats: dict[str, int] = {}
        try:
            self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         env=env, preexec_fn=child_preexec(),
                                         start_new_session=True)
        except OSError as exc:
            raise LineError(f"cannot start the delay line: {exc}") from None
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], READY_TIMEOUT_S)
        first = self.proc.stdout.readline().decode(errors="replace") if ready else ""
        if not first.startswith("ready"):
            why = self._stop()
            raise LineError(f"the delay line did not start ({self.where()}): "
                            f"{why or 'no answer in time'}")

    def where(self) -> str:
        return "host" if self.netns_pid is None else f"netns of pid {self.netns_pid}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def failure(self) -> str | None:
        """None while the line runs; why it ended otherwise."""
        if self.alive():
            return None
        err = self.proc.stderr.read().decode(errors="replace").strip() \
            if self.proc.stderr else ""
        return (f"the delay line ({self.where()}) ended with status "
                f"{self.proc.returncode}{': ' + err if err else ''}")

    def _stop(self) -> str:
        from gossipcert.chaos.procutil import stop_process

        stop_process(self.proc)
        out = self.proc.stdout.read().decode(errors="replace") if self.proc.stdout else ""
        err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
        for line in out.splitlines():
            if line.startswith("stats "):
                for item in line.split()[1:]:
                    key, _, value = item.partition("=")
                    with contextlib.suppress(ValueError):
                        self.stats[key] = int(value)
        return err.strip()

    def stop(self) -> dict[str, int]:
        """Release what it holds and end; returns its counters."""
        self._stop()
        return self.stats


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gossipcert.chaos.delayline",
        description="Hold the packets of NFQUEUE queues: latency, jitter, loss, "
                    "duplication, reordering, bandwidth cap.")
    parser.add_argument("--queue", action="append", required=True,
                        help="N:latency_ms=..,jitter_ms=..,loss=..,duplicate=..,"
                             "reorder=..,rate_kbit=.. (repeat per queue)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--maxlen", type=int, default=QUEUE_MAXLEN)
    args = parser.parse_args(argv)
    try:
        queues = dict(parse_queue(q) for q in args.queue)
    except ValueError as exc:
        print(f"delayline: bad --queue: {exc}", file=sys.stderr)
        return 2
    try:
        line = DelayLine(queues, seed=args.seed, maxlen=args.maxlen)
    except OSError as exc:
        print(f"delayline: cannot bind the queues: {exc}", file=sys.stderr)
        return 3
    stop = [False]

    def on_signal(signum: int, frame: object) -> None:
        stop[0] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print("ready", " ".join(str(q) for q in queues), flush=True)
    try:
        line.run(stop)
    finally:
        line.close()
        print(line.stats.line(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
