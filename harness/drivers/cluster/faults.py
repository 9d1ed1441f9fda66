"""The cluster's network faults: its fault planes (the link plane of Toxiproxy proxies when
the IUT takes a dial map, the packet plane of iptables rules), which one each fault
goes to, and the history entry recorded once the fault is in effect.

The planes themselves are :mod:`harness.drivers.faultplanes`'s adapters over
:mod:`chaos.linkplane` and :mod:`chaos.packet`; what a link's packets look like comes from
the nodes' addresses and the backend's namespaces and cgroups.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gossipcert.chaos.delayline import LineFaults, delay_unavailable_reason
from gossipcert.chaos.linkplane import LinkPlane, LinkPlaneUnavailable
from gossipcert.chaos.packet import Flow, PacketPlane, Sender
from gossipcert.chaos.runlabels import RUN_LABEL_ENV
from gossipcert.harness.drivers.backends import Backend, BackendFeatures, NodeAddress
from gossipcert.harness.drivers.cluster.calls import Recording
from gossipcert.harness.drivers.faultplanes import FaultPlane, LinkFaults, PacketFaults, choose
from gossipcert.harness.drivers.interface import NO_LATENCY
from gossipcert.harness.errors import LaunchError, ToxiproxyUnavailable
from gossipcert.harness.history import now_ms

__all__ = ["NetworkFaults"]


def _applied(began_ms: float) -> dict[str, float]:
    """When a network fault was confirmed in effect. The entry itself is stamped when
    its application began: at a hundred nodes a partition is thousands of rules or
    toxics, and links cut early must not look cut before the fault (a suspicion there
    would pass for a false positive)."""
    return {"applied_ms": round(now_ms(), 3), "applying_ms": round(now_ms() - began_ms, 1)}


class NetworkFaults:
    """Cuts, loss, latency and heals on the planes of one run, in order of preference:
    the link plane first when the IUT is routed through it; the packet plane opens on
    first use. A backend whose namespaces are elsewhere (the swarm's agents) brings its
    own packet plane."""

    def __init__(self, recording: Recording, backend: Backend, features: BackendFeatures,
                 run_label: str, addresses: Mapping[str, NodeAddress]) -> None:
        self.recording = recording
        self.backend = backend
        self.features = features
        self.run_label = run_label
        self.addresses = addresses
        self.links: LinkPlane | None = None
        owner = features.packet_plane
        open_packets = owner.packet_plane if owner is not None else PacketPlane
        env = {**os.environ, RUN_LABEL_ENV: run_label}  # a delay line is swept like a node
        # The swarm's namespaces are reached through its fault agents: no delay line there.
        self.delay_reason = ("the swarm backend's fault agents apply cuts and loss only"
                             if owner is not None else delay_unavailable_reason())
        self.packet_faults = PacketFaults(functools.partial(open_packets, run_label),
                                          self.flow, self.sender,
                                          delays=self.delay_reason is None,
                                          run_label=run_label, env=env)
        self.planes: dict[str, FaultPlane] = {"packet": self.packet_faults}

    # ---- set-up ----------------------------------------------------------------------

    def pin_sources(self) -> None:
        """Pin the nodes' TCP sources (before they start) where the backend asks for it."""
        pinning = self.features.pins_sources
        if pinning is not None:
            self.packet_faults.pin(pinning.source_pins(dict(self.addresses)))

    def open_link_plane(self, run_dir: Path, toxiproxy_url: str | None,
                        udp: bool = False) -> dict[str, dict[str, str]]:
        """Open the link plane, a proxy per directed link (with ``udp``, a UDP proxy on
        the same port too), and put it first; returns each node's TCP dial map (the
        UDP one is ``self.links.udp_routes()``)."""
        opener = self.features.link_server
        try:
            if opener is not None:
                # A backend whose nodes cannot reach the host's loopback runs the server itself.
                server = opener.open_link_server(run_dir, toxiproxy_url)
                self.links = LinkPlane.open(
                    self.run_label, run_dir, server.url,
                    server=server if server.container is not None else None,
                    listen_host=server.listen_host)
            else:
                self.links = LinkPlane.open(self.run_label, run_dir, toxiproxy_url)
        except LinkPlaneUnavailable as exc:
            raise ToxiproxyUnavailable(str(exc)) from None
        routes = self.links.build({n: a.gossip_addr for n, a in self.addresses.items()},
                                  udp=udp)
        self.planes = {"link": LinkFaults(self.links), **self.planes}
        return routes

    def close(self) -> None:
        """Close every plane (one that fails keeps none of the others open); the link
        plane's proxies go with ``close_links``, once the nodes have stopped."""
        for plane in self.planes.values():
            with contextlib.suppress(Exception):
                plane.close()

    def close_links(self) -> None:
        if self.links is not None:
            self.links.close()
            self.links = None

    # ---- what a link's packets are ---------------------------------------------------

    def flow(self, src: str, dst: str) -> Flow:
        """The packets of the directed link ``src -> dst``, as the packet plane matches them."""
        src_pid, dst_pid = self.backend.netns_pid(src), self.backend.netns_pid(dst)
        proxied = self.links is not None and (src, dst) in self.links.listen
        if proxied:
            assert self.links is not None
            host, _, port = self.links.listen[(src, dst)].rpartition(":")
            # A link's UDP proxy listens on its TCP proxy's port.
            protocols = ("tcp", "udp") if (src, dst) in self.links.udp_listen else ("tcp",)
            if src_pid is not None:  # leaving the sender's namespace for the proxy
                return Flow(dst=host, dports=(int(port),), protocols=protocols,
                            netns_pid=src_pid, hook="OUTPUT")
            return Flow(dst=host, dports=(int(port),), protocols=protocols)
        a, b = self.addresses[src], self.addresses[dst]
        if dst_pid is not None:
            return Flow(src=a.gossip[0], dst=b.gossip[0], netns_pid=dst_pid)
        if src_pid is not None:
            return Flow(src=a.gossip[0], dst=b.gossip[0], netns_pid=src_pid, hook="OUTPUT")
        return Flow(src=a.gossip[0], dst=b.gossip[0], ports=(a.gossip[1], b.gossip[1]),
                    nat_replies=self._cgroup(src) is not None)

    def _cgroup(self, node_id: str) -> str | None:
        """The node's own cgroup, where the backend gives it one (pinned process nodes)."""
        cgroups = self.features.cgroups
        return None if cgroups is None else cgroups.cgroup(node_id)

    def sender(self, node_id: str) -> Sender:
        """The packets ``node_id`` sends, as the packet plane counts them."""
        addr, pid = self.addresses[node_id], self.backend.netns_pid(node_id)
        cgroup = self._cgroup(node_id)
        if pid is None and cgroup is not None:  # a pinned node: whatever its processes send
            return Sender(node_id, cgroup=cgroup)
        if pid is None:  # the host's namespace: its gossip socket's own packets
            return Sender(node_id, src=addr.gossip[0], sport=addr.gossip[1])
        # its own namespace: all it sends but its control API's answers
        return Sender(node_id, src=addr.gossip[0], skip_sports=(addr.control[1],),
                      netns_pid=pid)

    # ---- faults ----------------------------------------------------------------------

    def plane_for(self, plane: str) -> str:
        """``auto`` is the link plane when the IUT is routed through it, else packets."""
        return choose(self.planes, "cut", plane).name

    def cut(self, links: list[tuple[str, str]], *, plane: str = "auto",
            groups: list[list[str]] | None = None, shape: str | None = None) -> None:
        """Cut directed links (both ways only if both directions are listed).

        Recorded as a ``partition`` fault when ``groups`` describe it exactly (every link
        between groups, both ways), else as a ``cut`` fault with its links.
        """
        chosen = choose(self.planes, "cut", plane)
        pairs = sorted(set(links))
        began = now_ms()
        chosen.cut(pairs)
        args: dict[str, Any] = {"links": [list(p) for p in pairs], "plane": chosen.name,
                                "mechanism": chosen.mechanism("cut"), **_applied(began)}
        if shape is not None:
            args["shape"] = shape
        history = self.recording.history
        if groups is not None:
            history.append("fault", "partition", args={"groups": groups, **args},
                           time_ms=began)
        else:
            history.append("fault", "cut", args=args, time_ms=began)

    def loss(self, links: list[tuple[str, str]], probability: float) -> None:
        """Drop packets on directed links at random (packet plane, TCP and UDP; link plane,
        the datagrams of UDP proxies only: the entry's ``protocols`` says which)."""
        chosen = choose(self.planes, "loss")
        pairs = sorted(set(links))
        began = now_ms()
        chosen.loss(pairs, probability)
        protocols = chosen.loss_protocols
        self.recording.history.append("fault", "loss", args={
            "links": [list(p) for p in pairs], "probability": probability, "plane": chosen.name,
            "mechanism": chosen.mechanism("loss"),
            **({"protocols": list(protocols)} if protocols else {}),
            **_applied(began)}, time_ms=began)

    def latency_unavailable(self) -> str | None:
        """Why no plane of this run can delay packets (None: one can)."""
        if any("latency" in p.faults for p in self.planes.values()):
            return None
        return NO_LATENCY + (f": {self.delay_reason}" if self.delay_reason else "")

    def latency(self, links: list[tuple[str, str]], latency_ms: int, jitter_ms: int = 0,
                extra: dict[str, float] | None = None) -> None:
        """Delay everything on directed links: the link plane's ``latency`` toxics (both
        streams) when the IUT is routed through it, else the packet plane's netem or
        delay line (TCP and UDP). ``extra`` (duplicate, reorder, rate_kbit) only the
        packet plane applies, so it takes the whole fault then."""
        pairs = sorted(set(links))
        began = now_ms()
        extra = dict(extra or {})
        if extra:
            try:
                faults = LineFaults(latency_ms=latency_ms, jitter_ms=jitter_ms, **extra)
            except ValueError as exc:  # a scenario file's values: reorder with no latency
                raise LaunchError(f"latency: {exc}") from None
            mechanism = self.packet_faults.degrade(pairs, faults)
            chosen: FaultPlane = self.packet_faults
        else:
            chosen = choose(self.planes, "latency")
            chosen.latency(pairs, latency_ms, jitter_ms)
            mechanism = chosen.mechanism("latency")
        self.recording.history.append("fault", "latency", args={
            "links": [list(p) for p in pairs], "latency_ms": latency_ms,
            "jitter_ms": jitter_ms, **extra, "plane": chosen.name,
            "mechanism": mechanism, **_applied(began)}, time_ms=began)

    def heal(self) -> None:
        """Restore every link on every plane; each confirms its own heal, and one that
        fails keeps none of the others from healing."""
        failed: list[Exception] = []
        evidence: dict[str, Any] = {}
        for plane in self.planes.values():
            try:
                plane.heal()
            except Exception as exc:
                failed.append(exc)
            # What a plane counted its faults doing (datagrams lost, packets held).
            evidence.update(plane.heal_evidence)
        if failed:
            raise failed[0]
        self.recording.history.append("fault", "heal", args=evidence)

    def traffic(self, live_nodes: list[str], periodic: bool = False) -> dict[str, Any] | None:
        """Read what the planes counted each live member sending, record the reading as a
        ``traffic`` operation (see :mod:`harness.history`) and return its result; None,
        with nothing recorded, when no plane can count.

        The plane of first choice counts: the link plane (``routing: dial-map``) reads
        every proxy's counters (our server's extension; a real Toxiproxy has none), else
        the packet plane counts with iptables (root only). Counters only grow: a reader
        takes the difference between two readings. A ``periodic`` reading (taken while
        the run watches, for the report's figures) is marked so and takes no round.
        """
        invoked = now_ms()
        counter = next(iter(self.planes.values()), None)
        result = counter.traffic(live_nodes) if counter is not None else None
        if result is None:
            return None
        history = self.recording.history
        call = history.new_call()
        args: dict[str, Any] = (
            {"periodic": True} if periodic else {"round": self.recording.next_round()}
        )
        history.append("invoke", "traffic", call=call, args=args, time_ms=invoked)
        history.append("ok", "traffic", call=call, args=args, result=result)
        return result
