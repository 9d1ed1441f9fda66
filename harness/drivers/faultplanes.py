"""One interface for the network fault planes of a real cluster, and its two adapters.

:class:`harness.drivers.cluster.Cluster` applies cuts, loss and latency through a
:class:`FaultPlane` and never needs to know which one it talks to: the link plane
(:class:`LinkFaults`, Toxiproxy proxies, :mod:`chaos.linkplane`) or the packet plane
(:class:`PacketFaults`, iptables, :mod:`chaos.packet`). Each plane says which faults it can
apply, confirms every fault it applies and its own heal (raising :class:`HarnessError` when
it cannot), and may count what each node sends. The cluster records the history entries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from gossipcert.chaos.linkplane import LinkPlane
from gossipcert.chaos.packet import Flow, PacketPlane, PacketPlaneError, Sender, SourcePin
from gossipcert.harness.drivers.interface import NO_LATENCY
from gossipcert.harness.errors import HarnessError, LaunchError

__all__ = ["FAULTS", "FaultPlane", "LinkFaults", "PacketFaults", "choose"]

Link = tuple[str, str]  # a directed link: (src, dst)

FAULTS = ("cut", "loss", "latency")

NO_LINK_PLANE = ("the link plane needs an IUT that accepts a dial map "
                 "(manifest routing: dial-map)")


class FaultPlane(Protocol):
    """Network faults on directed links, each returning once the fault is in effect."""

    name: str  # the history's ``plane``: ``link`` or ``packet``
    faults: frozenset[str]  # which of FAULTS it can apply

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
    """The link plane: cuts and delays as toxics on the proxy of each directed link."""

    name = "link"
    faults = frozenset({"cut", "latency"})

    def __init__(self, links: LinkPlane) -> None:
        self.links = links

    def cut(self, links: Sequence[Link]) -> None:
        for src, dst in links:
            self.links.cut_link(src, dst)
        if not self.links.confirm_cut():
            raise HarnessError("the link plane did not confirm the cut")

    def loss(self, links: Sequence[Link], probability: float) -> None:
        raise LaunchError(_cannot("loss", "the link plane"))

    def latency(self, links: Sequence[Link], latency_ms: int, jitter_ms: int) -> None:
        for src, dst in links:
            self.links.delay_link(src, dst, latency_ms, jitter_ms)
        for src, dst in links:
            if not self.links.confirm_delay(src, dst, latency_ms):
                raise HarnessError(f"the link plane did not confirm latency on {src}->{dst}")

    def heal(self) -> None:
        self.links.heal()
        self.links.clear_delays()
        if not self.links.clean():
            raise HarnessError("the link plane did not confirm the heal")

    def traffic(self, live_nodes: Sequence[str]) -> dict[str, Any] | None:
        """Every proxy's reads from its sender (``GET /stats``, our server's extension; a
        real Toxiproxy has none): a node sent what entered the proxies of its own links
        (``upstream``) plus what it answered on connections its peers opened to it
        (``downstream``)."""
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
            links[f"{src}->{dst}"] = entry
            if src in nodes:
                nodes[src]["messages"] += entry["up_chunks"]
                nodes[src]["bytes"] += entry["up_bytes"]
            if dst in nodes:
                nodes[dst]["messages"] += entry["down_chunks"]
                nodes[dst]["bytes"] += entry["down_bytes"]
        return {"plane": "link", "unit": "chunks", "nodes": nodes, "links": links}

    def close(self) -> None:
        """Nothing: the proxies (and their toxics) belong to the run's routing, which
        closes the :class:`LinkPlane`."""


class PacketFaults:
    """The packet plane: cuts and random loss as iptables rules, one :class:`Flow` per link.

    The iptables side is opened on first use (it needs root), by ``open_plane``; ``flow``
    and ``sender`` are the cluster's knowledge of where a link's packets and a node's
    own packets go (addresses, ports, network namespaces, proxies).
    """

    name = "packet"
    faults = frozenset({"cut", "loss"})

    def __init__(self, open_plane: Callable[[], PacketPlane], flow: Callable[[str, str], Flow],
                 sender: Callable[[str], Sender]) -> None:
        self._open_plane = open_plane
        self.flow = flow
        self.sender = sender
        self.packets: PacketPlane | None = None

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
        if not packets.confirm():
            raise HarnessError("the packet plane did not confirm the cut")

    def loss(self, links: Sequence[Link], probability: float) -> None:
        packets = self._plane()
        for src, dst in links:
            packets.loss(self.flow(src, dst), probability, tag=f"loss {src}->{dst}")
        if not packets.confirm():
            raise HarnessError("the packet plane did not confirm the loss rules")

    def latency(self, links: Sequence[Link], latency_ms: int, jitter_ms: int) -> None:
        raise LaunchError(NO_LATENCY)

    def heal(self) -> None:
        if self.packets is None:  # never used: nothing applied
            return
        self.packets.heal()
        if self.packets.active() or any(self.packets.listed(p)
                                        for p in self.packets.namespaces()):
            raise HarnessError("the packet plane did not confirm the heal")

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
        if self.packets is not None:
            self.packets.close()
