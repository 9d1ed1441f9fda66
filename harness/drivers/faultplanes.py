"""One interface for the network fault planes of a real cluster, and its two adapters.

:class:`harness.drivers.cluster.Cluster` applies cuts, loss and latency through a
:class:`FaultPlane` and never needs to know which one it talks to: the link plane
(:class:`LinkFaults`, Toxiproxy proxies, :mod:`chaos.linkplane`) or the packet plane
(:class:`PacketFaults`, iptables, :mod:`chaos.packet`). Each plane says which faults it can
apply, confirms every fault it applies and its own heal (raising :class:`HarnessError` when
it cannot), and may count what each node sends. The cluster records the history entries.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from gossipcert.chaos import delayline
from gossipcert.chaos.delayline import LineError, LineFaults, LineProcess
from gossipcert.chaos.linkplane import LinkPlane
from gossipcert.chaos.packet import Flow, PacketPlane, PacketPlaneError, Sender, SourcePin
from gossipcert.harness.drivers.interface import NO_LATENCY
from gossipcert.harness.errors import GossipcertError, HarnessError, LaunchError
from gossipcert.harness.manifest import Manifest

__all__ = ["DATAGRAM_BACKENDS", "FAULTS", "FaultPlane", "LinkFaults", "PacketFaults", "choose"]

Link = tuple[str, str]  # a directed link: (src, dst)

# The backends whose link plane carries datagrams for a UDP dial map. On the swarm's
# overlay the link plane stays TCP only (a node with a UDP dial map then sends every
# message over its TCP routes): UDP proxies across engines are not yet proven to heal
# within the repair bound every time.
DATAGRAM_BACKENDS = ("process", "docker")

FAULTS = ("cut", "loss", "latency")

NO_LINK_PLANE = ("the link plane needs an IUT that accepts a dial map "
                 "(manifest routing: dial-map)")


class FaultPlane(Protocol):
    """Network faults on directed links, each returning once the fault is in effect."""

    name: str  # the history's ``plane``: ``link`` or ``packet``
    faults: frozenset[str]  # which of FAULTS it can apply
    loss_protocols: tuple[str, ...]  # what its loss drops (the history's ``protocols``)
    # What its last heal found its faults did (datagrams dropped, packets a delay line
    # held): evidence the fault was on the traffic, added to the history's heal entry.
    heal_evidence: dict[str, Any]

    def mechanism(self, fault: str) -> str:
        """What applies ``fault`` (the history's ``mechanism``): ``toxiproxy``,
        ``iptables``, ``nfqueue`` or ``netem``."""
        ...

    def cut(self, links: Sequence[Link]) -> None:
        """Drop everything on exactly these links."""
        ...

    def loss(self, links: Sequence[Link], probability: float) -> None:
        """Drop each packet on these links with ``probability``."""
        ...

    def latency(self, links: Sequence[Link], latency_ms: int, jitter_ms: int) -> None:
        """Delay everything on these links."""
        ...

    def heal(self) -> None:
        """Undo every fault this plane applied, and confirm nothing of it is left."""
        ...

    def traffic(self, live_nodes: Sequence[str]) -> dict[str, Any] | None:
        """What the plane counted each of ``live_nodes`` sending (a ``traffic`` result of
        :mod:`harness.history`), or None when it cannot count."""
        ...

    def close(self) -> None:
        """The end of the run: remove whatever the plane still holds."""
        ...


def choose(planes: Mapping[str, FaultPlane], fault: str, plane: str = "auto") -> FaultPlane:
    """The plane that applies ``fault``: the one named, or with ``auto`` the first of
    ``planes`` able to (they come in order of preference: the link plane, when the IUT
    is routed through it, before the packet plane)."""
    if plane == "auto":
        chosen = next((p for p in planes.values() if fault in p.faults), None)
        if chosen is None:
            raise LaunchError(_cannot(fault, f"no fault plane of this run ({', '.join(planes)})"))
        return chosen
    if plane == "link" and plane not in planes:
        raise LaunchError(NO_LINK_PLANE)
    if plane not in planes:
        raise LaunchError(f"unknown fault plane {plane!r} (link, packet or auto)")
    if fault not in planes[plane].faults:
        raise LaunchError(_cannot(fault, f"the {plane} plane"))
    return planes[plane]


def _cannot(fault: str, who: str) -> str:
    if fault == "latency":
        return NO_LATENCY
    return f"{who} cannot apply {fault}"


class LinkFaults:
    """The link plane: cuts and delays as toxics on the proxy of each directed link; with
    UDP proxies too (a node that routes its datagrams through its dial map), random loss
    as a datagram drop on them.

    Loss on the link plane drops datagrams only: a link's TCP stream passes whole, since
    dropping bytes inside a reliable stream would corrupt it rather than lose a message
    (the history's ``loss`` fault says so: ``protocols: ["udp"]``)."""

    name = "link"
    # How long a node that routes datagrams has to show one on its UDP proxies before a
    # fault is applied to its links (a few of any SWIM node's probe intervals).
    ROUTED_WAIT_S = 3.0

    def __init__(self, links: LinkPlane) -> None:
        self.links = links
        self.faults = frozenset({"cut", "latency", *(("loss",) if links.udp_listen else ())})
        self.loss_protocols: tuple[str, ...] = ("udp",)
        self._routed: set[str] = set()  # nodes seen sending datagrams through their proxies
        # The lossy links' UDP counters when the loss began: the heal reports the difference.
        self._loss_base: dict[str, int] | None = None
        self.heal_evidence: dict[str, Any] = {}  # what the last heal adds to its entry

    @staticmethod
    def faults_for(manifest: Manifest, backend: str) -> frozenset[str]:
        """What this plane applies to a run of ``manifest`` on ``backend``, known before
        anything starts (preflight): cuts and delays on every proxied link, datagram loss
        where the manifest routes datagrams through it too (``udp_route_args``). A server
        without UDP proxies (a real Toxiproxy) leaves loss to the packet plane at run time."""
        try:
            routes_datagrams = (backend in DATAGRAM_BACKENDS
                                and bool(manifest.launch_for(backend).udp_route_args))
        except GossipcertError:
            routes_datagrams = False
        return frozenset({"cut", "latency", *(("loss",) if routes_datagrams else ())})

    def mechanism(self, fault: str) -> str:
        return "toxiproxy"

    def cut(self, links: Sequence[Link]) -> None:
        self.check_routed(links)
        for src, dst in links:
            self.links.cut_link(src, dst)
        if not self.links.confirm_cut():
            raise HarnessError("the link plane did not confirm the cut")

    def loss(self, links: Sequence[Link], probability: float) -> None:
        if "loss" not in self.faults:
            raise LaunchError(_cannot("loss", "the link plane"))
        self.check_routed(links)
        if self._loss_base is None:
            self._loss_base = self._datagram_counts(links)
        for src, dst in links:
            self.links.lose_on_link(src, dst, probability)
        if not self.links.confirm_loss(list(links), probability):
            raise HarnessError("the link plane did not confirm the loss toxics")

    def latency(self, links: Sequence[Link], latency_ms: int, jitter_ms: int) -> None:
        self.check_routed(links)
        for src, dst in links:
            self.links.delay_link(src, dst, latency_ms, jitter_ms)
        for src, dst in links:
            if not self.links.confirm_delay(src, dst, latency_ms):
                raise HarnessError(f"the link plane did not confirm latency on {src}->{dst}")

    def check_routed(self, links: Sequence[Link]) -> None:
        """A fault on a node's UDP proxies holds only if the node sends its datagrams
        there: one that declares a UDP dial map but whose proxies never saw a datagram
        from it sends them to its peers' own addresses, so a cut would not cut it. Judged
        on what the proxies relayed (not on what the node says), waiting up to
        ``ROUTED_WAIT_S`` for each sender's first datagram."""
        senders = {src for src, dst in links if (src, dst) in self.links.udp_listen}
        waiting = senders - self._routed
        deadline = time.monotonic() + self.ROUTED_WAIT_S
        while waiting:
            try:
                stats = self.links.client.stats()
            except (OSError, ValueError):
                return  # no counters to judge by: the fault plane's own checks stand
            if stats is None:
                return
            relayed = stats["udp_proxies"]
            for src, dst in self.links.udp_listen:
                found = relayed.get(self.links.proxy_name(src, dst)) or {}
                if src in waiting and int((found.get("upstream") or {}).get("datagrams", 0)):
                    self._routed.add(src)
            waiting -= self._routed
            if not waiting or time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        if waiting:
            names = ", ".join(sorted(waiting))
            raise LaunchError(
                f"node {names} sent no datagram through its UDP proxies although the manifest "
                f"declares a UDP dial map (udp_route_args): it sends datagrams to its peers' "
                f"own addresses, bypassing the link plane, so a cut would not cut it")

    def _datagram_counts(self, links: Sequence[Link]) -> dict[str, int]:
        """Datagrams that arrived at these links' UDP proxies from their senders, and
        those the proxies dropped (``GET /stats``); empty when the server cannot count."""
        try:
            stats = self.links.client.stats()
        except (OSError, ValueError):
            return {}
        if stats is None:
            return {}
        total = {"datagrams": 0, "dropped": 0}
        for src, dst in links:
            found = stats["udp_proxies"].get(self.links.proxy_name(src, dst)) or {}
            for stream in ("upstream", "downstream"):
                count = found.get(stream) or {}
                total["datagrams"] += int(count.get("datagrams", 0))
                total["dropped"] += int(count.get("dropped", 0))
        return total

    def heal(self) -> None:
        self.heal_evidence = {}
        if self.links.lossy and self._loss_base is not None:
            now = self._datagram_counts(sorted(self.links.lossy))
            if now and self._loss_base:
                # What the loss did, as the proxies counted it: the evidence that the
                # datagrams were dropped (the history's heal entry carries it).
                self.heal_evidence = {"datagrams_lost": {
                    "plane": "link", "links": len(self.links.lossy),
                    **{k: now[k] - self._loss_base[k] for k in now}}}
        self._loss_base = None
        self.links.heal()
        self.links.clear_delays()
        self.links.clear_losses()
        if not self.links.clean():
            raise HarnessError("the link plane did not confirm the heal")

    def traffic(self, live_nodes: Sequence[str]) -> dict[str, Any] | None:
        """Every proxy's reads from its sender (``GET /stats``, our server's extension; a
        real Toxiproxy has none): a node sent what entered the proxies of its own links
        (``upstream``) plus what it answered on connections its peers opened to it
        (``downstream``); with UDP proxies, the datagrams that arrived from it likewise
        (unit ``chunks+datagrams``)."""
        try:
            stats = self.links.client.stats()
        except (OSError, ValueError):
            return None
        if stats is None:
            return None
        live = set(live_nodes)
        nodes: dict[str, dict[str, Any]] = {
            n: {"messages": 0, "bytes": 0, "scope": "link"} for n in sorted(live)}
        links: dict[str, dict[str, int]] = {}
        for src, dst in sorted(self.links.listen):
            found = stats["proxies"].get(self.links.proxy_name(src, dst))
            if not isinstance(found, dict):
                continue
            up, down = found.get("upstream") or {}, found.get("downstream") or {}
            entry = {"connections": int(found.get("connections", 0)),
                     "up_chunks": int(up.get("chunks", 0)), "up_bytes": int(up.get("bytes", 0)),
                     "down_chunks": int(down.get("chunks", 0)),
                     "down_bytes": int(down.get("bytes", 0))}
            relay = stats["udp_proxies"].get(self.links.proxy_name(src, dst))
            if (src, dst) in self.links.udp_listen and isinstance(relay, dict):
                uup, udown = relay.get("upstream") or {}, relay.get("downstream") or {}
                entry.update(up_datagrams=int(uup.get("datagrams", 0)),
                             up_datagram_bytes=int(uup.get("bytes", 0)),
                             up_dropped=int(uup.get("dropped", 0)),
                             down_datagrams=int(udown.get("datagrams", 0)),
                             down_datagram_bytes=int(udown.get("bytes", 0)))
            links[f"{src}->{dst}"] = entry
            if src in nodes:
                nodes[src]["messages"] += entry["up_chunks"] + entry.get("up_datagrams", 0)
                nodes[src]["bytes"] += entry["up_bytes"] + entry.get("up_datagram_bytes", 0)
            if dst in nodes:
                nodes[dst]["messages"] += entry["down_chunks"] + entry.get("down_datagrams", 0)
                nodes[dst]["bytes"] += entry["down_bytes"] + entry.get("down_datagram_bytes", 0)
        unit = "chunks+datagrams" if self.links.udp_listen else "chunks"
        return {"plane": "link", "unit": unit, "nodes": nodes, "links": links}

    def close(self) -> None:
        """Nothing: the proxies (and their toxics) belong to the run's routing, which
        closes the :class:`LinkPlane`."""


class PacketFaults:
    """The packet plane: cuts and random loss as iptables rules, one :class:`Flow` per link,
    and latency (with the other kinds of :class:`LineFaults`) by netem where the kernel
    has it, else by a delay line on an NFQUEUE (:mod:`chaos.delayline`).

    The iptables side is opened on first use (it needs root), by ``open_plane``; ``flow``
    and ``sender`` are the cluster's knowledge of where a link's packets and a node's
    own packets go (addresses, ports, network namespaces, proxies). ``delays`` is False
    where the namespaces are out of this host's reach (the swarm's fault agents run
    iptables, not a delay line).
    """

    name = "packet"

    def __init__(self, open_plane: Callable[[], PacketPlane], flow: Callable[[str, str], Flow],
                 sender: Callable[[str], Sender], *, delays: bool = True,
                 run_label: str = "", env: Mapping[str, str] | None = None,
                 seed: int | None = None,
                 start_line: Callable[..., LineProcess] = LineProcess) -> None:
        self._open_plane = open_plane
        self.flow = flow
        self.sender = sender
        self.packets: PacketPlane | None = None
        self.faults = frozenset({"cut", "loss", "latency"} if delays else {"cut", "loss"})
        self.env = dict(env if env is not None else os.environ)
        self.seed = seed
        self.start_line = start_line
        digest = int(hashlib.sha1(run_label.encode()).hexdigest()[:8], 16)
        self._next_queue = 1024 + digest % 48000  # queue numbers are per namespace
        self.lines: list[LineProcess] = []
        self.netem: dict[tuple[int | None, str], int] = {}  # (netns, dev): classes used
        self.loss_protocols: tuple[str, ...] = ("tcp", "udp")
        self.heal_evidence: dict[str, Any] = {}  # the lines stopped by the last heal

    @staticmethod
    def faults_for(manifest: Manifest, backend: str) -> frozenset[str]:
        """What this plane applies to a run on ``backend``, known before anything starts
        (preflight): cuts and loss by iptables, delays by netem or the delay line except
        through the swarm's fault agents (iptables only). Whether this machine offers them
        is the preflight's to probe."""
        return frozenset({"cut", "loss"} if backend == "swarm" else {"cut", "loss", "latency"})

    def mechanism(self, fault: str) -> str:
        if fault in ("cut", "loss"):
            return "iptables"
        return delayline.delay_mechanism()

    def _plane(self) -> PacketPlane:
        if self.packets is None:
            self.packets = self._open_plane()
        return self.packets

    def pin(self, pins: Sequence[SourcePin]) -> None:
        """Pin the TCP source of nodes that dial from 127.0.0.1 (before they start)."""
        if not pins:
            return
        try:
            self._plane().pin_sources(pins)
        except PacketPlaneError as exc:
            raise LaunchError(f"the packet plane cannot pin the nodes' TCP sources to "
                              f"their own addresses: {exc}") from None

    def cut(self, links: Sequence[Link]) -> None:
        packets = self._plane()
        for src, dst in links:
            packets.cut(self.flow(src, dst), tag=f"cut {src}->{dst}")
        self._confirm("the packet plane did not confirm the cut")

    def loss(self, links: Sequence[Link], probability: float) -> None:
        packets = self._plane()
        for src, dst in links:
            packets.loss(self.flow(src, dst), probability, tag=f"loss {src}->{dst}")
        self._confirm("the packet plane did not confirm the loss rules")

    def latency(self, links: Sequence[Link], latency_ms: int, jitter_ms: int) -> None:
        try:
            faults = LineFaults(latency_ms=latency_ms, jitter_ms=jitter_ms)
        except ValueError as exc:
            raise LaunchError(f"latency: {exc}") from None
        self.degrade(links, faults)

    def degrade(self, links: Sequence[Link], faults: LineFaults) -> str:
        """Delay (jitter, lose, duplicate, reorder, cap) every packet of these links,
        TCP and UDP; returns the mechanism that applied it (``netem`` or ``nfqueue``)."""
        if "latency" not in self.faults:
            raise LaunchError("the packet plane of this backend cannot delay packets "
                              "(its namespaces are reached through fault agents)")
        mechanism = delayline.delay_mechanism()
        if mechanism == "netem":
            self._netem(links, faults)
        else:
            self._queue(links, faults)
        return mechanism

    def _queue(self, links: Sequence[Link], faults: LineFaults) -> None:
        """A queue per link, a line per namespace holding them, then the rules sending the
        links' packets to their queues (the line listens before any packet is queued)."""
        packets = self._plane()
        by_space: dict[int | None, list[tuple[int, Flow, Link]]] = {}
        for src, dst in links:
            flow = self.flow(src, dst)
            queue = self._next_queue
            self._next_queue = 1024 + (self._next_queue - 1024 + 1) % 64000
            by_space.setdefault(flow.netns_pid, []).append((queue, flow, (src, dst)))
        for pid, queued in by_space.items():
            try:
                line = self.start_line({q: faults for q, _, _ in queued}, pid, self.env,
                                       seed=None if self.seed is None
                                       else self.seed + len(self.lines))
            except LineError as exc:
                raise HarnessError(str(exc)) from None
            self.lines.append(line)
            for queue, flow, (src, dst) in queued:
                packets.queue(flow, queue, tag=f"delay {src}->{dst}")
        self._confirm("the packet plane did not confirm the delay rules")

    def _netem(self, links: Sequence[Link], faults: LineFaults) -> None:
        """A netem class per link on the egress of the sender's side: the loopback of the
        host for process nodes, a container's ``eth0`` otherwise."""
        for src, dst in links:
            flow = self.flow(src, dst)
            pid = flow.netns_pid if flow.hook == "OUTPUT" else self.sender(src).netns_pid
            dev = "lo" if pid is None else "eth0"
            key = (pid, dev)
            if key not in self.netem:
                for argv in delayline.netem_root(dev):
                    _tc(pid, argv)
                self.netem[key] = 1
            self.netem[key] += 1
            for argv in delayline.netem_commands(dev, self.netem[key], flow.src, flow.dst,
                                                 faults):
                _tc(pid, argv)

    def _confirm(self, what: str) -> None:
        packets = self._plane()
        if not packets.confirm():
            raise HarnessError(what)
        self.check_lines()

    def check_lines(self) -> None:
        """A delay line that ended while its fault is on is the harness's failure: its
        links would carry packets undelayed while the history says they are delayed."""
        for line in self.lines:
            why = line.failure()
            if why is not None:
                raise HarnessError(why)

    def heal(self) -> None:
        failure = None
        self.heal_evidence = {}
        if self.netem:
            for pid, dev in list(self.netem):
                _tc(pid, delayline.netem_heal(dev), check=False)
            self.netem.clear()
        if self.packets is None:  # never used: nothing applied
            return
        try:
            self.check_lines()
        except HarnessError as exc:
            failure = exc
        self.packets.heal()  # the rules first: nothing is queued to a line stopping
        held: dict[str, int] = {}
        for line in self.lines:
            for key, value in line.stop().items():
                held[key] = held.get(key, 0) + value
        self.lines.clear()
        self.heal_evidence = {"delay_lines": held} if held else {}
        if self.packets.active() or any(self.packets.listed(p)
                                        for p in self.packets.namespaces()):
            raise HarnessError("the packet plane did not confirm the heal")
        if failure is not None:
            raise failure

    def traffic(self, live_nodes: Sequence[str]) -> dict[str, Any] | None:
        """iptables counters of what each node sends (root only); a node seen in a new
        network namespace (a restarted container) is counted anew."""
        try:
            packets = self._plane()
            senders = []
            for node_id in live_nodes:
                sender = self.sender(node_id)
                known = packets.senders.get(node_id)
                if known is not None and known.netns_pid == sender.netns_pid:
                    continue
                if known is not None:
                    packets.senders.pop(node_id)
                senders.append(sender)
            packets.count_senders(senders)
            counted = packets.counters()
        except PacketPlaneError:
            return None
        nodes: dict[str, dict[str, Any]] = {}
        for node_id in sorted(set(live_nodes) & set(counted)):
            c = counted[node_id]
            sender = packets.senders[node_id]
            scope = ("netns" if sender.netns_pid is not None
                     else "cgroup" if sender.cgroup is not None else "gossip-port")
            nodes[node_id] = {"messages": c["udp_packets"] + c["tcp_packets"],
                              "bytes": c["udp_bytes"] + c["tcp_bytes"], "scope": scope, **c}
        return {"plane": "packet", "unit": "packets", "nodes": nodes}

    def close(self) -> None:
        for pid, dev in list(self.netem):
            _tc(pid, delayline.netem_heal(dev), check=False)
        self.netem.clear()
        for line in self.lines:
            line.stop()
        self.lines.clear()
        if self.packets is not None:
            self.packets.close()


def _tc(pid: int | None, argv: Sequence[str], *, check: bool = True) -> None:
    """Run ``tc`` on the host, or in the network namespace of ``pid``."""
    if pid is not None:
        argv = ["nsenter", "-t", str(pid), "-n", *argv]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired) as exc:
        if check:
            raise HarnessError(f"{' '.join(argv)}: {exc}") from None
        return
    if check and proc.returncode != 0:
        raise HarnessError(f"tc refused {' '.join(argv)}: {proc.stderr.strip()}")
