"""The real cluster's network faults go through one fault-plane interface: which plane a
fault picks, what each plane is handed, and what the history records once it is in effect.

Fake planes stand in for Toxiproxy and iptables, so nothing here starts a node, a proxy
or a rule; the slow suites run the same paths on real ones.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from gossipcert.chaos import delayline
from gossipcert.chaos.delayline import LineFaults
from gossipcert.chaos.packet import Flow, PacketPlaneError, Sender
from gossipcert.harness.drivers import faultplanes
from gossipcert.harness.drivers.cluster import Cluster
from gossipcert.harness.drivers.faultplanes import LinkFaults, PacketFaults, choose
from gossipcert.harness.drivers.interface import NO_LATENCY
from gossipcert.harness.errors import HarnessError, LaunchError
from gossipcert.harness.history import History
from gossipcert.harness.manifest import load_manifest

AB, BA, BC = ("n1", "n2"), ("n2", "n1"), ("n2", "n3")


class FakePlane:
    """A fault plane that records what it is asked; ``fails`` names a call that raises."""

    def __init__(self, name: str, faults: set[str], fails: str = "",
                 reading: dict[str, Any] | None = None) -> None:
        self.name = name
        self.faults = frozenset(faults)
        self.fails = fails
        self.reading = reading
        self.calls: list[tuple[Any, ...]] = []
        self.loss_protocols = ("udp",) if name == "link" else ("tcp", "udp")
        self.heal_evidence: dict[str, Any] = {}

    def mechanism(self, fault: str) -> str:
        if self.name == "link":
            return "toxiproxy"
        return "nfqueue" if fault == "latency" else "iptables"

    def _record(self, *call: Any) -> None:
        self.calls.append(call)
        if call[0] == self.fails:
            raise HarnessError(f"the {self.name} plane did not confirm the {call[0]}")

    def cut(self, links: Sequence[tuple[str, str]]) -> None:
        self._record("cut", list(links))

    def loss(self, links: Sequence[tuple[str, str]], probability: float) -> None:
        self._record("loss", list(links), probability)

    def latency(self, links: Sequence[tuple[str, str]], latency_ms: int, jitter_ms: int) -> None:
        self._record("latency", list(links), latency_ms, jitter_ms)

    def heal(self) -> None:
        self._record("heal")

    def traffic(self, live_nodes: Sequence[str]) -> dict[str, Any] | None:
        self._record("traffic", list(live_nodes))
        return self.reading

    def close(self) -> None:
        self._record("close")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A cluster that is never started: its fault methods run on whatever planes it has."""
    c = Cluster(load_manifest("reference"), 3, tmp_path, history=History())
    yield c
    c.history.close()


def _routed(cluster: Cluster, **fails: str) -> tuple[FakePlane, FakePlane]:
    link = FakePlane("link", {"cut", "latency"}, fails=fails.get("link", ""))
    packet = FakePlane("packet", {"cut", "loss"}, fails=fails.get("packet", ""))
    cluster.planes = {"link": link, "packet": packet}
    return link, packet


def _faults(cluster: Cluster) -> list[tuple[str, dict[str, Any]]]:
    """The fault entries, without when a network fault was confirmed (checked apart)."""
    return [(e.op, {k: v for k, v in e.args.items() if k not in _APPLIED})
            for e in cluster.history if e.type == "fault"]


_APPLIED = ("applied_ms", "applying_ms")


def test_a_network_fault_is_stamped_when_its_application_began(cluster: Cluster) -> None:
    """At scale a partition is thousands of toxics: its entry's time is when they began
    to go in, and ``applied_ms`` when the plane confirmed them all."""
    _routed(cluster)
    cluster.cut([AB, BA], groups=[["n1"], ["n2"]])
    [entry] = [e for e in cluster.history if e.type == "fault"]
    assert entry.time_ms <= entry.args["applied_ms"]
    assert entry.args["applying_ms"] >= 0


def test_an_unstarted_cluster_has_the_packet_plane_only(cluster: Cluster) -> None:
    assert list(cluster.planes) == ["packet"]
    assert not cluster.has_link_plane
    assert cluster.plane_for("auto") == "packet"


def test_a_routed_cluster_cuts_on_the_link_plane_and_records_after(cluster: Cluster) -> None:
    link, packet = _routed(cluster)
    assert cluster.has_link_plane and cluster.plane_for("auto") == "link"
    cluster.cut([BA, AB, BA], groups=[["n1"], ["n2"]], shape="halves")
    assert link.calls == [("cut", [AB, BA])]  # the links asked, once each, in order
    assert packet.calls == []
    [(op, args)] = _faults(cluster)
    assert op == "partition"
    assert list(args) == ["groups", "links", "plane", "mechanism", "shape"]
    assert args == {"groups": [["n1"], ["n2"]], "links": [list(AB), list(BA)],
                    "plane": "link", "mechanism": "toxiproxy", "shape": "halves"}


def test_an_explicit_plane_is_the_one_used(cluster: Cluster) -> None:
    link, packet = _routed(cluster)
    cluster.cut([BC], plane="packet")
    cluster.cut([AB], plane="link", shape="one-way")
    assert packet.calls == [("cut", [BC])]
    assert link.calls == [("cut", [AB])]
    assert _faults(cluster) == [
        ("cut", {"links": [list(BC)], "plane": "packet", "mechanism": "iptables"}),
        ("cut", {"links": [list(AB)], "plane": "link", "mechanism": "toxiproxy",
                 "shape": "one-way"}),
    ]


def test_loss_goes_to_the_plane_that_can_drop_at_random(cluster: Cluster) -> None:
    link, packet = _routed(cluster)
    cluster.loss([BC, AB], 0.25)
    assert link.calls == []
    assert packet.calls == [("loss", [AB, BC], 0.25)]
    [(op, args)] = _faults(cluster)
    assert op == "loss"
    assert list(args) == ["links", "probability", "plane", "mechanism", "protocols"]
    assert args == {"links": [list(AB), list(BC)], "probability": 0.25, "plane": "packet",
                    "mechanism": "iptables", "protocols": ["tcp", "udp"]}


def test_latency_goes_to_the_link_plane(cluster: Cluster) -> None:
    link, packet = _routed(cluster)
    cluster.latency([AB], 120, 30)
    assert link.calls == [("latency", [AB], 120, 30)]
    assert packet.calls == []
    [(op, args)] = _faults(cluster)
    assert op == "latency" and list(args) == ["links", "latency_ms", "jitter_ms", "plane",
                                              "mechanism"]
    assert args == {"links": [list(AB)], "latency_ms": 120, "jitter_ms": 30, "plane": "link",
                    "mechanism": "toxiproxy"}


def test_latency_without_a_dial_map_goes_to_the_packet_plane(cluster: Cluster) -> None:
    """An implementation the link plane does not carry gets latency from the packet plane
    (netem or the delay line), named in the history."""
    packet = FakePlane("packet", {"cut", "loss", "latency"})
    cluster.planes = {"packet": packet}
    assert cluster.latency_unavailable is None
    cluster.latency([AB], 100, 20)
    assert packet.calls == [("latency", [AB], 100, 20)]
    [(op, args)] = _faults(cluster)
    assert op == "latency" and args["plane"] == "packet" and args["mechanism"] == "nfqueue"


def test_latency_without_the_link_plane_is_the_no_latency_error(cluster: Cluster) -> None:
    packet = FakePlane("packet", {"cut", "loss"})
    cluster.planes = {"packet": packet}
    assert cluster.latency_unavailable is not None
    assert cluster.latency_unavailable.startswith(NO_LATENCY)
    with pytest.raises(LaunchError) as raised:
        cluster.latency([AB], 100)
    assert str(raised.value) == NO_LATENCY
    assert packet.calls == [] and _faults(cluster) == []


def test_a_plane_that_cannot_is_refused_and_unknown_or_missing_planes_named() -> None:
    packet = FakePlane("packet", {"cut", "loss"})
    with pytest.raises(LaunchError, match="dial-map"):
        choose({"packet": packet}, "cut", "link")
    with pytest.raises(LaunchError, match="unknown fault plane 'netem'"):
        choose({"packet": packet}, "cut", "netem")
    with pytest.raises(LaunchError) as raised:
        choose({"packet": packet}, "latency", "packet")
    assert str(raised.value) == NO_LATENCY
    link = FakePlane("link", {"cut", "latency"})
    with pytest.raises(LaunchError, match="the link plane cannot apply loss"):
        choose({"link": link}, "loss", "link")
    with pytest.raises(LaunchError, match="no fault plane of this run"):
        choose({"link": link}, "loss")


def test_heal_reaches_every_plane_and_is_recorded_after(cluster: Cluster) -> None:
    link, packet = _routed(cluster)
    cluster.cut([AB])
    cluster.loss([BC], 0.5)
    cluster.heal()
    assert link.calls[-1] == ("heal",) and packet.calls[-1] == ("heal",)
    assert [op for op, _ in _faults(cluster)] == ["cut", "loss", "heal"]
    assert _faults(cluster)[-1] == ("heal", {})


def test_a_heal_one_plane_cannot_confirm_still_heals_the_others_and_is_not_recorded(
    cluster: Cluster,
) -> None:
    link, packet = _routed(cluster, link="heal")
    with pytest.raises(HarnessError, match="the link plane did not confirm the heal"):
        cluster.heal()
    assert link.calls == [("heal",)] and packet.calls == [("heal",)]
    assert _faults(cluster) == []


def test_a_fault_not_confirmed_is_not_recorded(cluster: Cluster) -> None:
    _routed(cluster, packet="cut")
    with pytest.raises(HarnessError, match="did not confirm the cut"):
        cluster.cut([AB], plane="packet")
    assert _faults(cluster) == []


def test_the_plane_of_first_choice_counts_traffic(cluster: Cluster) -> None:
    reading = {"plane": "link", "unit": "chunks", "nodes": {}, "links": {}}
    link = FakePlane("link", {"cut", "latency"}, reading=reading)
    packet = FakePlane("packet", {"cut", "loss"}, reading={"plane": "packet"})
    cluster.planes = {"link": link, "packet": packet}
    cluster.killed.add("n2")
    assert cluster.traffic() == reading
    assert link.calls == [("traffic", ["n1", "n3"])] and packet.calls == []
    assert [(e.type, e.op) for e in cluster.history] == [("invoke", "traffic"),
                                                          ("ok", "traffic")]
    link.reading = None  # a real Toxiproxy counts nothing: no reading, nothing recorded
    assert cluster.traffic() is None
    assert len(cluster.history) == 2


def test_record_to_switches_every_later_entry_to_the_new_history(cluster: Cluster) -> None:
    """Explore gives each example a history of its own: after ``record_to`` faults and
    readings go there, and the one before keeps what came earlier."""
    _routed(cluster)
    first = cluster.history
    cluster.cut([AB])
    example = History()
    cluster.record_to(example)  # no node answers here: nothing polled, nothing lost
    assert cluster.history is example
    cluster.heal()
    assert [(e.type, e.op) for e in first] == [("fault", "cut")]
    assert [(e.type, e.op) for e in example] == [("fault", "heal")]
    example.close()


# ---- the adapters, over fakes of the planes they wrap --------------------------------


class FakeLinkPlane:
    def __init__(self, confirms: bool = True, udp: bool = False,
                 relayed: dict[str, int] | None = None) -> None:
        self.confirms = confirms
        self.calls: list[tuple[Any, ...]] = []
        links = [AB, BA, BC] if udp else []
        self.udp_listen = {link: "127.0.0.1:9" for link in links}
        self.lossy: set[tuple[str, str]] = set()
        # Datagrams each link's UDP proxy counted from its sender (``GET /stats``).
        self.relayed = relayed if relayed is not None else {f"{s}->{d}": 3 for s, d in links}
        self.client = self

    def proxy_name(self, src: str, dst: str) -> str:
        return f"{src}->{dst}"

    def stats(self) -> dict[str, Any]:
        return {"proxies": {}, "udp_proxies": {
            name: {"upstream": {"datagrams": n}} for name, n in self.relayed.items()}}

    def lose_on_link(self, src: str, dst: str, probability: float) -> None:
        self.calls.append(("lose_on_link", src, dst, probability))
        self.lossy.add((src, dst))

    def confirm_loss(self, links: list[tuple[str, str]], probability: float) -> bool:
        self.calls.append(("confirm_loss", links, probability))
        return self.confirms

    def clear_losses(self) -> None:
        self.calls.append(("clear_losses",))
        self.lossy.clear()

    def cut_link(self, src: str, dst: str) -> None:
        self.calls.append(("cut_link", src, dst))

    def confirm_cut(self) -> bool:
        self.calls.append(("confirm_cut",))
        return self.confirms

    def delay_link(self, src: str, dst: str, latency_ms: int, jitter_ms: int = 0) -> None:
        self.calls.append(("delay_link", src, dst, latency_ms, jitter_ms))

    def confirm_delay(self, src: str, dst: str, latency_ms: int) -> bool:
        self.calls.append(("confirm_delay", src, dst, latency_ms))
        return self.confirms

    def heal(self) -> None:
        self.calls.append(("heal",))

    def clear_delays(self) -> None:
        self.calls.append(("clear_delays",))

    def clean(self) -> bool:
        self.calls.append(("clean",))
        return self.confirms


def test_the_link_adapter_cuts_and_delays_exactly_the_links_then_confirms() -> None:
    proxies = FakeLinkPlane()
    plane = LinkFaults(proxies)  # type: ignore[arg-type]
    plane.cut([AB, BC])
    plane.latency([BA], 80, 5)
    plane.heal()
    assert proxies.calls == [
        ("cut_link", *AB), ("cut_link", *BC), ("confirm_cut",),
        ("delay_link", *BA, 80, 5), ("confirm_delay", *BA, 80),
        ("heal",), ("clear_delays",), ("clear_losses",), ("clean",),
    ]
    with pytest.raises(LaunchError, match="cannot apply loss"):
        plane.loss([AB], 0.5)


def test_the_link_adapter_drops_datagrams_only_when_the_links_have_udp_proxies() -> None:
    """Loss on the link plane is a datagram drop on each link's UDP proxy, confirmed;
    the adapter offers it only when the run routes datagrams."""
    proxies = FakeLinkPlane(udp=True)
    plane = LinkFaults(proxies)  # type: ignore[arg-type]
    assert plane.faults == {"cut", "latency", "loss"} and plane.loss_protocols == ("udp",)
    plane.loss([AB, BC], 0.1)
    assert proxies.calls == [("lose_on_link", *AB, 0.1), ("lose_on_link", *BC, 0.1),
                             ("confirm_loss", [AB, BC], 0.1)]
    with pytest.raises(HarnessError, match="did not confirm the loss"):
        LinkFaults(FakeLinkPlane(confirms=False, udp=True)).loss([AB], 0.1)  # type: ignore[arg-type]


def test_a_node_that_bypasses_its_udp_dial_map_is_named_before_a_fault() -> None:
    """A node that declares a UDP dial map and sends no datagram through its proxies
    sends them to its peers directly: a cut on its links would not cut, so the fault is
    refused with the node named, judged on what the proxies relayed."""
    bypassing = FakeLinkPlane(udp=True, relayed={"n1->n2": 0, "n2->n1": 5, "n2->n3": 5})
    plane = LinkFaults(bypassing)  # type: ignore[arg-type]
    plane.ROUTED_WAIT_S = 0.3
    plane.cut([BA, BC])  # n2 routes its datagrams: its links are cut
    with pytest.raises(LaunchError, match=r"node n1 sent no datagram through its UDP proxies"):
        plane.cut([AB])
    assert ("cut_link", *AB) not in bypassing.calls


def test_the_link_adapter_raises_what_it_cannot_confirm() -> None:
    plane = LinkFaults(FakeLinkPlane(confirms=False))  # type: ignore[arg-type]
    with pytest.raises(HarnessError, match="the link plane did not confirm the cut"):
        plane.cut([AB])
    with pytest.raises(HarnessError, match="did not confirm latency on n1->n2"):
        plane.latency([AB], 80, 0)
    with pytest.raises(HarnessError, match="the link plane did not confirm the heal"):
        plane.heal()


class FakePacketPlane:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.rules = 0
        self.senders: dict[str, Sender] = {}

    def cut(self, flow: Flow, tag: str = "cut") -> None:
        self.calls.append(("cut", flow, tag))
        self.rules += 1

    def loss(self, flow: Flow, probability: float, tag: str = "loss") -> None:
        self.calls.append(("loss", flow, probability, tag))
        self.rules += 1

    def queue(self, flow: Flow, queue: int, tag: str = "delay") -> None:
        self.calls.append(("queue", flow, queue, tag))
        self.rules += 1

    def confirm(self) -> bool:
        return True

    def heal(self) -> None:
        self.calls.append(("heal",))
        self.rules = 0

    def active(self) -> int:
        return self.rules

    def namespaces(self) -> list[int | None]:
        return []

    def listed(self, pid: int | None = None) -> list[str]:
        return []

    def count_senders(self, senders: list[Sender]) -> None:
        self.calls.append(("count_senders", [s.node for s in senders]))
        self.senders.update({s.node: s for s in senders})

    def counters(self) -> dict[str, dict[str, int]]:
        return {n: {"udp_packets": 2, "udp_bytes": 20, "tcp_packets": 1, "tcp_bytes": 50}
                for n in self.senders}

    def close(self) -> None:
        self.calls.append(("close",))


def _flow(src: str, dst: str) -> Flow:
    return Flow(src=src, dst=dst)


def test_the_packet_adapter_opens_on_first_use_and_builds_a_flow_per_link() -> None:
    opened: list[FakePacketPlane] = []

    def open_plane() -> FakePacketPlane:
        opened.append(FakePacketPlane())
        return opened[-1]

    plane = PacketFaults(open_plane, _flow, lambda n: Sender(n))  # type: ignore[arg-type]
    plane.heal()  # nothing applied: nothing to open
    plane.close()
    assert opened == []
    plane.cut([AB, BC])
    plane.loss([BA], 0.1)
    plane.heal()
    [packets] = opened
    assert packets.calls == [
        ("cut", _flow(*AB), "cut n1->n2"), ("cut", _flow(*BC), "cut n2->n3"),
        ("loss", _flow(*BA), 0.1, "loss n2->n1"), ("heal",),
    ]
    cannot = PacketFaults(open_plane, _flow, lambda n: Sender(n),  # type: ignore[arg-type]
                          delays=False)
    assert "latency" not in cannot.faults
    with pytest.raises(LaunchError, match="cannot delay"):
        cannot.latency([AB], 100, 0)


class FakeLine:
    """A delay line that is never started: what it was given, and whether it still runs."""

    started: list[FakeLine] = []

    def __init__(self, queues: dict[int, LineFaults], netns_pid: int | None,
                 env: dict[str, str], seed: int | None = None) -> None:
        self.queues, self.netns_pid, self.env = queues, netns_pid, env
        self.dead = False
        self.stopped = False
        FakeLine.started.append(self)

    def failure(self) -> str | None:
        return "the delay line (host) ended with status 1" if self.dead else None

    def stop(self) -> dict[str, int]:
        self.stopped = True
        return {}


def test_the_packet_adapter_delays_through_a_line_per_namespace(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Without netem: a queue per link, one line per network namespace started before the
    rules that feed it, stopped after they are gone; a line that died is the harness's
    error when the plane next confirms a fault and when it heals."""
    monkeypatch.setattr(delayline, "netem_available", lambda: False)
    FakeLine.started = []
    packets = FakePacketPlane()
    pids = {"n1": None, "n2": 41, "n3": 42}

    def flow(src: str, dst: str) -> Flow:
        return Flow(src=src, dst=dst, netns_pid=pids[dst])

    plane = PacketFaults(lambda: packets, flow, lambda n: Sender(n),  # type: ignore[arg-type,return-value]
                         run_label="gc-1-2-3", env={"GOSSIPCERT_RUN": "gc-1-2-3"},
                         start_line=FakeLine)
    assert plane.mechanism("latency") == "nfqueue" and plane.mechanism("cut") == "iptables"
    assert plane.degrade([AB, ("n3", "n2")], LineFaults(latency_ms=100, jitter_ms=10)) \
        == "nfqueue"
    [line41] = [line for line in FakeLine.started if line.netns_pid == 41]
    assert len(FakeLine.started) == 1 and len(line41.queues) == 2
    assert line41.env["GOSSIPCERT_RUN"] == "gc-1-2-3"
    queued = [c for c in packets.calls if c[0] == "queue"]
    assert [c[3] for c in queued] == ["delay n1->n2", "delay n3->n2"]
    assert {c[2] for c in queued} == set(line41.queues)
    plane.latency([BC], 50, 0)
    assert len(FakeLine.started) == 2 and FakeLine.started[1].netns_pid == 42
    FakeLine.started[1].dead = True
    with pytest.raises(HarnessError, match="delay line"):
        plane.cut([AB])
    with pytest.raises(HarnessError, match="delay line"):
        plane.heal()
    assert packets.calls[-1] == ("heal",) and packets.rules == 0
    assert all(line.stopped for line in FakeLine.started) and plane.lines == []
    plane.heal()  # nothing left: a second heal is quiet


def test_netem_where_the_kernel_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """This kernel has no netem, so its path is checked by the commands it builds: an HTB
    class and a netem qdisc per link on the sender's egress, one root per device, and one
    ``tc qdisc del ... root`` per device at heal."""
    monkeypatch.setattr(delayline, "netem_available", lambda: True)
    ran: list[tuple[int | None, list[str]]] = []
    monkeypatch.setattr(faultplanes, "_tc", lambda pid, argv, check=True:
                        ran.append((pid, list(argv))))
    plane = PacketFaults(FakePacketPlane, lambda s, d: Flow(src=f"10.0.0.{s[1]}",  # type: ignore[arg-type]
                                                            dst=f"10.0.0.{d[1]}", netns_pid=7),
                         lambda n: Sender(n, netns_pid=5), start_line=FakeLine)
    faults = LineFaults(latency_ms=100, jitter_ms=20, loss=0.01, duplicate=0.02,
                        reorder=0.25, rate_kbit=512)
    assert plane.degrade([AB, BC], faults) == "netem"
    assert all(pid == 5 for pid, _ in ran)  # the sender's namespace: netem is egress
    argvs = [" ".join(a) for _, a in ran]
    assert argvs[:2] == ["tc qdisc add dev eth0 root handle 1: htb default 1",
                         "tc class add dev eth0 parent 1: classid 1:1 htb rate 100gbit"]
    assert ("tc qdisc add dev eth0 parent 1:2 handle 2: netem limit 8192 delay 100ms 20ms "
            "loss 1% duplicate 2% reorder 25% rate 512kbit") in argvs
    assert ("tc filter add dev eth0 parent 1: protocol ip prio 1 u32 match ip src "
            "10.0.0.2/32 match ip dst 10.0.0.3/32 flowid 1:3") in argvs
    assert len(argvs) == 2 + 3 * 2
    ran.clear()
    plane.heal()
    assert ran == [(5, ["tc", "qdisc", "del", "dev", "eth0", "root"])]
    assert delayline.netem_commands("lo", 2, "127.0.0.2", "127.0.0.3", LineFaults(
        latency_ms=5))[1][-4:] == ["limit", "8192", "delay", "5ms"]


def test_the_packet_adapter_counts_each_node_anew_in_a_new_namespace() -> None:
    packets = FakePacketPlane()
    pids = {"n1": None, "n2": 41}
    plane = PacketFaults(lambda: packets, _flow,  # type: ignore[arg-type,return-value]
                         lambda n: Sender(n, netns_pid=pids[n]))
    first = plane.traffic(["n1", "n2"])
    assert first is not None and first["plane"] == "packet" and first["unit"] == "packets"
    assert first["nodes"]["n1"]["scope"] == "gossip-port"
    assert first["nodes"]["n2"] == {"messages": 3, "bytes": 70, "scope": "netns",
                                    "udp_packets": 2, "udp_bytes": 20, "tcp_packets": 1,
                                    "tcp_bytes": 50}
    pids["n2"] = 42  # a restarted container
    plane.traffic(["n1", "n2"])
    assert [c for c in packets.calls if c[0] == "count_senders"] == [
        ("count_senders", ["n1", "n2"]), ("count_senders", ["n2"])]


def test_the_packet_adapter_reads_no_traffic_without_iptables() -> None:
    def unavailable() -> FakePacketPlane:
        raise PacketPlaneError("the packet plane needs root (iptables)")

    plane = PacketFaults(unavailable, _flow, lambda n: Sender(n))  # type: ignore[arg-type]
    assert plane.traffic(["n1"]) is None
    with pytest.raises(PacketPlaneError):
        plane.cut([AB])


def test_line_faults_are_validated_and_pass_through_the_command_line() -> None:
    faults = LineFaults(latency_ms=100, jitter_ms=20, loss=0.05, duplicate=0.01,
                        reorder=0.2, rate_kbit=512)
    arg = delayline.queue_arg(1234, faults)
    assert arg == ("1234:latency_ms=100,jitter_ms=20,loss=0.05,duplicate=0.01,reorder=0.2,"
                   "rate_kbit=512")
    assert delayline.parse_queue(arg) == (1234, faults)
    for bad in ("70000:latency_ms=1", "1:latency=5", "1:loss=1.5", "1:jitter_ms=-1",
                "1:reorder=0.5"):
        with pytest.raises(ValueError):
            delayline.parse_queue(bad)
    assert delayline.main(["--queue", "1:loss=2"]) == 2  # bad input: its own exit code


def test_a_latency_storm_may_ask_the_packet_plane_for_more(tmp_path: Path) -> None:
    """``duplicate``, ``reorder`` and ``rate_kbit`` on a latency storm reach the operation
    (and only the packet plane applies them); out-of-range values are refused."""
    from gossipcert.harness.workloads.faults import Latency
    from gossipcert.harness.workloads.planner import plan
    from gossipcert.harness.workloads.scenario import ScenarioError, load_scenario

    path = tmp_path / "s.yaml"
    path.write_text("name: s\nsteps:\n  - kind: join\n  - kind: latency-storm\n"
                    "    latency_ms: 50\n    duplicate: 0.1\n    reorder: 0.2\n"
                    "    rate_kbit: 1000\n")
    ops = plan(load_scenario(path).steps, ["n1", "n2", "n3"], 1, {})
    [storm] = [op for op in ops if isinstance(op, Latency)]
    assert dict(storm.extra) == {"duplicate": 0.1, "reorder": 0.2, "rate_kbit": 1000.0}
    path.write_text("name: s\nsteps:\n  - kind: latency-storm\n    duplicate: 2\n")
    with pytest.raises(ScenarioError, match="duplicate"):
        load_scenario(path)


def test_extra_line_faults_take_the_packet_plane_even_when_routed(cluster: Cluster) -> None:
    """The link plane has no duplication: a storm that asks for it is the packet plane's
    whole, and the history records the extra kinds with the mechanism."""
    link, _ = _routed(cluster)
    applied: list[tuple[Any, ...]] = []
    cluster.faults.packet_faults.degrade = (  # type: ignore[method-assign]
        lambda links, faults: applied.append((links, faults)) or "nfqueue")
    cluster.latency([AB], 80, 10, extra={"duplicate": 0.1})
    assert link.calls == []
    assert applied == [([AB], LineFaults(latency_ms=80, jitter_ms=10, duplicate=0.1))]
    [(op, args)] = _faults(cluster)
    assert op == "latency" and args["duplicate"] == 0.1 and args["mechanism"] == "nfqueue"
    assert args["plane"] == "packet"


def test_without_root_latency_is_untested_with_the_reason(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """As a plain user the packet plane cannot delay: a cluster without the link plane
    says why (a latency step is then skipped, its requirement untested), never fails."""
    monkeypatch.setattr(delayline, "unavailable_reason",
                        lambda: "the packet plane needs root (iptables)")
    monkeypatch.setattr(delayline, "netem_available", lambda: False)
    assert delayline.delay_unavailable_reason() == "the packet plane needs root (iptables)"
    c = Cluster(load_manifest("reference"), 3, tmp_path, history=History())
    try:
        assert "latency" not in c.faults.packet_faults.faults
        reason = c.latency_unavailable
        assert reason is not None and reason.startswith(NO_LATENCY)
        assert reason.endswith("needs root (iptables)")
    finally:
        c.history.close()
