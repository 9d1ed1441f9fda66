"""The packet plane: partitions and random loss as iptables rules, for TCP and UDP alike.

Every rule a run adds lives in chains of its own (``GC-<hash of the run label>-i`` for
``INPUT``, ``-o`` for ``OUTPUT``), jumped to from the hook, so healing flushes exactly our
rules and closing removes the chains and their jumps, whatever else the host's firewall
holds. Rules sit on the receiver's side by default, as Jepsen's do (docs/protocol-notes.md):

* process-backend nodes share the host's namespace on their own loopback addresses
  (127.0.0.x): the rules go into the host's tables and match source and destination
  address, plus the run's ports so another run on the same addresses is untouched;
* a node with its own network namespace (a container, or ``ip netns``) is reached from
  the host with ``nsenter -t <pid> -n iptables ...``, so the image under test needs no
  tool of its own.

Loopback has one catch: a process bound to 127.0.0.5 for listening still dials TCP from
127.0.0.1 (the kernel's preferred source for the whole 127/8 route) unless it binds its
dialing sockets too, and Go's dialer (Serf, memberlist) does not. For such a node the
plane pins the source (:class:`SourcePin`): every TCP packet its cgroup sends leaves
with the node's own address (SNAT in ``nat/POSTROUTING``), so a link's packets match by
address and port whichever side opened the connection.

A drop in ``INPUT`` is silent, like a lost packet; a drop in ``OUTPUT`` makes the
sender's ``sendto`` fail with EPERM, so ``OUTPUT`` is only for a sender whose receiver
has no namespace we can enter. Loopback packets cross each hook once, so a loss
probability stays exact.

Counting (:meth:`PacketPlane.count_senders`, :meth:`PacketPlane.counters`): rules with no
target in one more chain of the run (``GC-<hash>-c``), in the ``raw`` table's ``OUTPUT``,
which the kernel runs before the ``filter`` table: every packet a node sends is counted
before any cut or loss rule drops it, and healing (which flushes the fault chains) leaves
the counters alone. A :class:`Sender` says how a node's packets are told apart: by source
address and the source port of its gossip socket on the host (other runs share the
127.0.0.x addresses, never the ports), by everything leaving its own namespace but its
control API otherwise. UDP counts datagrams; TCP counts segments that carry the PSH flag
(one per send, pure ACKs left out). Bytes are whole IP packets.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from gossipcert.chaos.errors import ChaosError

CHAIN_PREFIX = "GC-"
HOOKS = {"INPUT": "i", "OUTPUT": "o"}
JUMP_COMMENT = "gossipcert run={label} pid={pid}"
IPTABLES_TIMEOUT_S = 15.0
PROTOCOLS = ("tcp", "udp")
# The firewall mark of the copies a delay line sends itself (duplication): its queueing
# rule skips them, so a copy is not queued again (:mod:`chaos.delayline`).
DUP_MARK = 0x47430001


class PacketPlaneError(ChaosError):
    """iptables is missing, not permitted, or refused a rule."""


CAP_NET_ADMIN = 12


def _has_net_admin() -> bool:
    """Whether this process holds CAP_NET_ADMIN (root in a container may not: Docker
    drops it unless ``--cap-add NET_ADMIN``). Unknown counts as held."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_NET_ADMIN & 1)
    except (OSError, ValueError, IndexError):
        pass
    return True


def unavailable_reason() -> str | None:
    """Why the packet plane cannot work on this machine, or None when it can."""
    if shutil.which("iptables") is None:
        return "iptables is not installed (Debian package: iptables)"
    if os.geteuid() != 0:
        return "the packet plane needs root (iptables)"
    if not _has_net_admin():
        return ("the packet plane needs CAP_NET_ADMIN, which this root lacks (in a "
                "container: docker run --cap-add NET_ADMIN)")
    try:
        proc = subprocess.run(["iptables", "-w", "5", "-S", "INPUT"], capture_output=True,
                              text=True, timeout=IPTABLES_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"iptables does not answer: {exc}"
    if proc.returncode != 0:
        return f"iptables cannot list INPUT: {proc.stderr.strip()}"
    return None


def iptables(pid: int | None, args: Sequence[str], *, check: bool = True) -> str:
    """Run iptables in the host's namespace, or in the one of process ``pid``."""
    argv = ["iptables", "-w", "5", *args]
    if pid is not None:
        argv = ["nsenter", "-t", str(pid), "-n", *argv]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=IPTABLES_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PacketPlaneError(f"{' '.join(argv)}: {exc}") from None
    if check and proc.returncode != 0:
        where = "host" if pid is None else f"netns of pid {pid}"
        raise PacketPlaneError(
            f"iptables ({where}) refused {' '.join(args)}: {proc.stderr.strip()}"
        )
    return proc.stdout


class Runner(Protocol):
    """Runs ``iptables ARGS`` in the namespace of ``pid`` (None: the host's) and returns
    its output; a refusal raises :class:`PacketPlaneError` when ``check``."""

    def __call__(self, pid: int | None, args: Sequence[str], *, check: bool = True) -> str: ...


def chain_name(run_label: str) -> str:
    """The stem of a run's chain names (under iptables' 28-character limit)."""
    return CHAIN_PREFIX + hashlib.sha1(run_label.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Flow:
    """The packets of one directed link, as iptables can match them.

    ``ports`` match when either the source or the destination port is in the set (a
    node's own gossip port, and the peer's); ``dports`` match the destination port only
    (a proxy's listener). ``netns_pid`` names a process in whose network namespace the
    rule goes (None: the host's); ``hook`` is where: ``INPUT`` of the receiver's
    namespace, or ``OUTPUT`` of the sender's.

    ``nat_replies`` adds one more TCP match for nodes whose outgoing connections are
    pinned to their own address (:class:`SourcePin`): the answers ``src`` sends on a
    connection ``dst`` opened arrive with the connection's original source
    (``127.0.0.1``) as destination, since the rewrite is undone before ``INPUT``; the
    connection's reply tuple still names ``dst``, and that is what they are matched by.
    """

    src: str | None = None
    dst: str | None = None
    ports: tuple[int, ...] = ()
    dports: tuple[int, ...] = ()
    protocols: tuple[str, ...] = PROTOCOLS
    netns_pid: int | None = None
    hook: str = "INPUT"
    nat_replies: bool = False

    def matches(self) -> list[list[str]]:
        """One iptables match per protocol (and one more for pinned TCP replies)."""
        out = []
        for proto in self.protocols:
            args: list[str] = []
            if self.src:
                args += ["-s", self.src]
            if self.dst:
                args += ["-d", self.dst]
            args += ["-p", proto, *self._port_args()]
            out.append(args)
        if self.nat_replies and self.src and self.dst and "tcp" in self.protocols:
            out.append(["-s", self.src, "-p", "tcp", *self._port_args(), "-m", "conntrack",
                        "--ctdir", "REPLY", "--ctrepldst", self.dst])
        return out

    def _port_args(self) -> list[str]:
        args: list[str] = []
        if self.ports:
            args += ["-m", "multiport", "--ports", ",".join(str(p) for p in self.ports)]
        if self.dports:
            args += ["-m", "multiport", "--dports", ",".join(str(p) for p in self.dports)]
        return args


@dataclass(frozen=True)
class SourcePin:
    """A node process that listens on its own loopback address but dials TCP from the
    kernel's default loopback source (``127.0.0.1``), as Go's and most programs' dialers
    do: the packet plane rewrites the source of every TCP packet its cgroup sends to
    ``address`` (SNAT in ``nat/POSTROUTING``), so its connections match by address and
    port like its UDP. ``cgroup``: the node's cgroup v2 path, relative to the root."""

    node: str
    cgroup: str
    address: str


@dataclass(frozen=True)
class Sender:
    """The packets one node sends, as the counting rules match them.

    ``src``/``sport``: the node's address and gossip port (either may be None: any).
    ``skip_sports``: source ports left out (its control API's answers to the harness).
    ``netns_pid``: a process in the node's own namespace (None: the host's).
    ``cgroup``: everything the node's processes send (cgroup v2 path), but to
    ``127.0.0.1`` (the harness, and a bridge's own talk with its agent); used instead of
    the address for a pinned node, whose connections leave from ``127.0.0.1`` before
    the rewrite.
    """

    node: str
    src: str | None = None
    sport: int | None = None
    skip_sports: tuple[int, ...] = ()
    netns_pid: int | None = None
    cgroup: str | None = None

    def matches(self) -> dict[str, list[str]]:
        """One iptables match per protocol."""
        out = {}
        for proto in PROTOCOLS:
            args = ["-s", self.src] if self.src else []
            if self.cgroup is not None:
                args = ["-m", "cgroup", "--path", self.cgroup, "!", "-d", "127.0.0.1"]
            args += ["-p", proto, "-m", proto]
            if self.sport is not None:
                args += ["--sport", str(self.sport)]
            if proto == "tcp":
                args += ["--tcp-flags", "PSH", "PSH"]
            if self.skip_sports:
                args += ["-m", "multiport", "!", "--sports",
                         ",".join(str(p) for p in self.skip_sports)]
            if self.netns_pid is not None:
                args += ["!", "-o", "lo"]  # its own loopback is not the network
            out[proto] = args
        return out


COUNT_TABLE = "raw"
COUNT_HOOK = "OUTPUT"
COUNT_TAG = "gc count"
PIN_TABLE = "nat"
PIN_HOOK = "POSTROUTING"


@dataclass
class _Namespace:
    """Our chain on one hook of one network namespace (the host's when ``pid`` is None)."""

    pid: int | None
    hook: str
    chain: str
    created: bool = False
    rules: list[list[str]] = field(default_factory=list)


class PacketPlane:
    """Cut and degrade directed links with iptables; ``heal`` and ``close`` leave nothing."""

    def __init__(self, run_label: str, runner: Runner | None = None) -> None:
        """``runner`` runs iptables where the namespaces are (default: on this host, with
        nsenter for a pid); the swarm backend's goes through each node's fault agent."""
        if runner is None:
            reason = unavailable_reason()
            if reason is not None:
                raise PacketPlaneError(reason)
        self._runner: Runner = runner or iptables
        self.run_label = run_label
        self.chain = chain_name(run_label)
        self._spaces: dict[tuple[int | None, str], _Namespace] = {}
        self.count_chain = f"{self.chain}-c"
        self.senders: dict[str, Sender] = {}
        self._counting: set[int | None] = set()  # namespaces holding our counting chain
        self.pin_chain = f"{self.chain}-n"
        self.pins: dict[str, SourcePin] = {}

    def _run(self, pid: int | None, args: Sequence[str], *, check: bool = True) -> str:
        return self._runner(pid, args, check=check)

    def _space(self, pid: int | None, hook: str) -> _Namespace:
        if hook not in HOOKS:
            raise PacketPlaneError(f"unknown hook {hook!r} (INPUT or OUTPUT)")
        space = self._spaces.get((pid, hook))
        if space is None:
            chain = f"{self.chain}-{HOOKS[hook]}"
            space = self._spaces[(pid, hook)] = _Namespace(pid, hook, chain)
        if not space.created:
            self._run(pid, ["-N", space.chain])
            comment = JUMP_COMMENT.format(label=self.run_label[:200], pid=os.getpid())
            self._run(pid, ["-I", hook, "1", "-m", "comment", "--comment", comment,
                            "-j", space.chain])
            space.created = True
        return space

    # ---- faults ----------------------------------------------------------------------

    def _add(self, flow: Flow, extra: list[str], tag: str,
             target: Sequence[str] = ("DROP",)) -> None:
        """Drops go first in the chain, queueing rules last: a packet a cut or a loss
        rule matches is dropped before a delay line could take (and accept) it."""
        space = self._space(flow.netns_pid, flow.hook)
        where = ["-I", space.chain, "1"] if target[0] == "DROP" else ["-A", space.chain]
        for match in flow.matches():
            rule = [*match, *extra, "-m", "comment", "--comment", f"gc {tag}", "-j", *target]
            self._run(flow.netns_pid, [*where, *rule])
            space.rules.append(rule)

    def cut(self, flow: Flow, tag: str = "cut") -> None:
        """Drop every packet of ``flow``."""
        self._add(flow, [], tag)

    def loss(self, flow: Flow, probability: float, tag: str = "loss") -> None:
        """Drop each packet of ``flow`` independently with ``probability``."""
        if not 0.0 < probability <= 1.0:
            raise PacketPlaneError(f"loss probability must be in (0, 1], got {probability}")
        extra = ["-m", "statistic", "--mode", "random", "--probability", f"{probability:.6f}"]
        self._add(flow, extra, tag)

    def queue(self, flow: Flow, queue: int, tag: str = "delay") -> None:
        """Hand every packet of ``flow`` to NFQUEUE ``queue`` (a delay line,
        :mod:`chaos.delayline`), but the duplicates the line sends itself. With
        ``--queue-bypass`` a queue nobody reads lets packets through instead of dropping
        them: the harness confirms the line runs, a dead one is its error."""
        extra = ["-m", "mark", "!", "--mark", f"0x{DUP_MARK:x}"]
        self._add(flow, extra, tag, target=("NFQUEUE", "--queue-num", str(queue),
                                            "--queue-bypass"))

    def heal(self) -> None:
        """Remove every rule, our chains and the jumps to them: nothing of ours is left."""
        for space in self._spaces.values():
            if space.created:
                _remove_chain(space.pid, space.hook, space.chain, run=self._runner)
                space.created = False
            space.rules.clear()

    # ---- source pinning --------------------------------------------------------------

    def pin_sources(self, pins: Iterable[SourcePin]) -> None:
        """Rewrite the TCP source of each pinned node to its own address, from now on (so
        before the node starts: a connection keeps the source it began with). Healing
        leaves the pins; closing removes them."""
        t = ["-t", PIN_TABLE]
        for pin in pins:
            if pin.node in self.pins:
                continue
            if not self.pins:
                self._run(None, [*t, "-N", self.pin_chain])
                comment = JUMP_COMMENT.format(label=self.run_label[:200], pid=os.getpid())
                self._run(None, [*t, "-I", PIN_HOOK, "1", "-m", "comment", "--comment",
                                 comment, "-j", self.pin_chain])
            self._run(None, [*t, "-A", self.pin_chain, "-m", "cgroup", "--path", pin.cgroup,
                             "-p", "tcp", "!", "-s", pin.address, "-m", "comment",
                             "--comment", f"gc pin {pin.node}", "-j", "SNAT",
                             "--to-source", pin.address])
            self.pins[pin.node] = pin

    def unpin_sources(self) -> None:
        if self.pins:
            _remove_chain(None, PIN_HOOK, self.pin_chain, table=PIN_TABLE, run=self._runner)
        self.pins.clear()

    # ---- counting --------------------------------------------------------------------

    def count_senders(self, senders: Iterable[Sender]) -> None:
        """Count what each sender sends from now on (a sender counted already is kept)."""
        for sender in senders:
            if sender.node in self.senders:
                continue
            pid = sender.netns_pid
            if pid not in self._counting:
                self._run(pid, ["-t", COUNT_TABLE, "-N", self.count_chain])
                comment = JUMP_COMMENT.format(label=self.run_label[:200], pid=os.getpid())
                self._run(pid, ["-t", COUNT_TABLE, "-I", COUNT_HOOK, "1", "-m", "comment",
                                "--comment", comment, "-j", self.count_chain])
                self._counting.add(pid)
            for proto, match in sender.matches().items():
                tag = f"{COUNT_TAG} {sender.node} {proto}"
                self._run(pid, ["-t", COUNT_TABLE, "-A", self.count_chain, *match,
                                "-m", "comment", "--comment", tag])
            self.senders[sender.node] = sender

    def counters(self) -> dict[str, dict[str, int]]:
        """Per counted node: ``{udp_packets, udp_bytes, tcp_packets, tcp_bytes}`` since it
        was first counted. A namespace that is gone (a stopped container) reads as zeros,
        so a reader that sees a counter go down knows the node's count restarted."""
        out = {node: {f"{proto}_{what}": 0 for proto in PROTOCOLS
                      for what in ("packets", "bytes")} for node in self.senders}
        for pid in self._counting:
            try:
                text = self._run(pid, ["-t", COUNT_TABLE, "-v", "-S", self.count_chain])
            except PacketPlaneError:
                continue
            for line in text.splitlines():
                parsed = _count_line(line)
                if parsed is None:
                    continue
                node, proto, packets, nbytes = parsed
                if node in out and self.senders[node].netns_pid == pid:
                    out[node][f"{proto}_packets"] += packets
                    out[node][f"{proto}_bytes"] += nbytes
        return out

    def stop_counting(self) -> None:
        for pid in self._counting:
            _remove_chain(pid, COUNT_HOOK, self.count_chain, table=COUNT_TABLE,
                          run=self._runner)
        self._counting.clear()
        self.senders.clear()

    # ---- reading back ----------------------------------------------------------------

    def listed(self, pid: int | None = None) -> list[str]:
        """Our rules in one namespace as ``iptables -S`` shows them, both hooks."""
        out: list[str] = []
        for (space_pid, _), space in self._spaces.items():
            if space_pid == pid and space.created:
                text = self._run(pid, ["-S", space.chain], check=False)
                out += [line for line in text.splitlines() if line.startswith("-A ")]
        return out

    def confirm(self) -> bool:
        """Whether iptables lists exactly the rules we added, in every namespace used."""
        pids = {pid for pid, _ in self._spaces}
        wanted = {pid: 0 for pid in pids}
        for (pid, _), space in self._spaces.items():
            wanted[pid] += len(space.rules)
        return all(len(self.listed(pid)) == wanted[pid] for pid in pids)

    def active(self) -> int:
        return sum(len(space.rules) for space in self._spaces.values())

    def namespaces(self) -> list[int | None]:
        return sorted({pid for (pid, _), s in self._spaces.items() if s.created},
                      key=lambda p: -1 if p is None else p)

    def close(self) -> None:
        """The end of a run: heal, and remove the counting chains and the pins."""
        self.heal()
        self.stop_counting()
        self.unpin_sources()


def _count_line(line: str) -> tuple[str, str, int, int] | None:
    """``-A CHAIN ... --comment "gc count n1 udp" -c 12 3400`` to (n1, udp, 12, 3400)."""
    parts = line.split()
    if len(parts) < 3 or parts[0] != "-A" or parts[-3] != "-c":
        return None
    words = _unquote(parts[2:-3])
    for i, word in enumerate(words):
        if word == "--comment" and i + 1 < len(words):
            tag = words[i + 1].split()
            if len(tag) == 4 and " ".join(tag[:2]) == COUNT_TAG:
                try:
                    return tag[2], tag[3], int(parts[-2]), int(parts[-1])
                except ValueError:
                    return None
    return None


def _remove_chain(pid: int | None, hook: str, chain: str, table: str = "filter",
                  run: Runner | None = None) -> None:
    run = run or iptables
    t = ["-t", table]
    with contextlib.suppress(PacketPlaneError):
        for line in run(pid, [*t, "-S", hook], check=False).splitlines():
            parts = line.split()
            if parts[:2] == ["-A", hook] and parts[-2:] == ["-j", chain]:
                run(pid, [*t, "-D", hook, *_unquote(parts[2:])], check=False)
        run(pid, [*t, "-F", chain], check=False)
        run(pid, [*t, "-X", chain], check=False)


def _unquote(parts: Iterable[str]) -> list[str]:
    """Rejoin a rule printed by ``iptables -S`` (quoted comments) into argv form."""
    out: list[str] = []
    buf: list[str] | None = None
    for part in parts:
        if buf is not None:
            buf.append(part)
            if part.endswith('"'):
                out.append(" ".join(buf)[1:-1])
                buf = None
        elif part.startswith('"') and not (part.endswith('"') and len(part) > 1):
            buf = [part]
        elif part.startswith('"') and part.endswith('"'):
            out.append(part[1:-1])
        else:
            out.append(part)
    return out


def our_chains() -> dict[tuple[str, str], int | None]:
    """Host chains made by gossipcert runs: ``{(hook, chain): pid of the run that made it}``
    (the counting chain's hook is ``raw/OUTPUT``, the pins' ``nat/POSTROUTING``)."""
    found: dict[tuple[str, str], int | None] = {}
    for hook in [*HOOKS, f"{COUNT_TABLE}/{COUNT_HOOK}", f"{PIN_TABLE}/{PIN_HOOK}"]:
        table, _, name = hook.rpartition("/")
        listing = ["-t", table, "-S", name] if table else ["-S", name]
        for line in iptables(None, listing, check=False).splitlines():
            parts = line.split()
            if parts[:2] != ["-A", name] or not parts[-1].startswith(CHAIN_PREFIX):
                continue
            pid: int | None = None
            for word in parts:
                if word.startswith("pid="):
                    with contextlib.suppress(ValueError):
                        pid = int(word[4:].rstrip('"'))
            found[(hook, parts[-1])] = pid
    return found


def sweep_chains() -> list[str]:
    """Remove host chains (and their jumps) left by runs that died; returns their names.

    A chain is removed only when the run that made it (its pid, in the jump's comment)
    is gone. Chains inside a container's namespace go away with the container.
    """
    if unavailable_reason() is not None:
        return []
    removed = []
    for (hook, chain), pid in our_chains().items():
        if pid is None or _alive(pid):
            continue
        table, _, name = hook.rpartition("/")
        _remove_chain(None, name, chain, table=table or "filter")
        removed.append(chain)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
