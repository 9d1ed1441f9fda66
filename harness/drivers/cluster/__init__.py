"""A running cluster of one implementation: nodes on a backend, the fault planes between
them, and the history every call, fault and node-side event is written to.

Both ``gossipcert certify`` and the pytest plugin's ``cluster`` fixture drive
:class:`Cluster`, the one object the rest of the harness holds. It is a thin composition
of four parts, each a module here: the nodes' lifecycle over the backend
(:mod:`.nodes`), the client calls and their recording (:mod:`.calls`), the network faults
on the fault planes (:mod:`.faults`) and the polling of node-side events (:mod:`.events`).
The backend's optional features are read once, when the cluster is built
(:class:`harness.drivers.backends.BackendFeatures`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from gossipcert.chaos.linkplane import LinkPlane
from gossipcert.chaos.packet import Flow
from gossipcert.chaos.runlabels import new_run_label
from gossipcert.harness.drivers.backends import (
    Backend,
    BackendFeatures,
    NodeAddress,
    make_backend,
)
from gossipcert.harness.drivers.cluster.calls import Calls, Recording, together
from gossipcert.harness.drivers.cluster.events import (
    EVENT_POLL_PER_NODE_S,
    EVENT_POLL_S,
    EventPoller,
)
from gossipcert.harness.drivers.cluster.faults import NetworkFaults
from gossipcert.harness.drivers.cluster.nodes import Nodes
from gossipcert.harness.drivers.control_client import ControlClient, Reply
from gossipcert.harness.drivers.faultplanes import DATAGRAM_BACKENDS, FaultPlane, PacketFaults
from gossipcert.harness.errors import LaunchError
from gossipcert.harness.history import History
from gossipcert.harness.manifest import Launch, Manifest

__all__ = ["Cluster"]


class Cluster:
    """Start, fault and observe ``n`` nodes; ``close()`` leaves nothing running."""

    def __init__(
        self,
        manifest: Manifest,
        n: int,
        run_dir: Path,
        *,
        backend: str | Backend = "process",
        seed: int = 0,
        base_port: int | None = None,
        toxiproxy_url: str | None = None,
        history: History | None = None,
        event_poll_s: float | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.manifest = manifest
        self.node_ids = [f"n{i + 1}" for i in range(n)]
        self.run_dir = run_dir
        self.backend = make_backend(backend) if isinstance(backend, str) else backend
        self.features = BackendFeatures.of(self.backend)
        self.seed = seed
        self.rng = random.Random(seed)
        self.base_port = base_port
        self.toxiproxy_url = toxiproxy_url
        self.progress = progress or (lambda line: None)
        # Every child process of the run carries this label in its environment, so a
        # sweeper (and the tests) can find whatever a crashed run left behind.
        self.run_label = new_run_label(seed)
        self._recording = Recording(
            history if history is not None else History(run_dir / "history.jsonl"))
        self.nodes = Nodes(self._recording, manifest, self.backend, self.features,
                           self.node_ids, run_dir, self.run_label, self.client, self.progress)
        self.events = EventPoller(
            self._recording, self.nodes.addresses, self.nodes.live_nodes,
            event_poll_s if event_poll_s is not None
            else max(EVENT_POLL_S, EVENT_POLL_PER_NODE_S * n))
        self.calls = Calls(self._recording, self.nodes.addresses, self.events.raise_failure)
        self.faults = NetworkFaults(self._recording, self.backend, self.features,
                                    self.run_label, self.nodes.addresses)

    # ---- what the parts hold ---------------------------------------------------------

    @property
    def history(self) -> History:
        """The history the cluster writes to now (see :meth:`record_to`)."""
        return self._recording.history

    @history.setter
    def history(self, history: History) -> None:
        self._recording.history = history

    @property
    def launch(self) -> Launch | None:
        return self.nodes.launch

    @property
    def addresses(self) -> dict[str, NodeAddress]:
        return self.nodes.addresses

    @property
    def routes(self) -> dict[str, dict[str, str]]:
        return self.nodes.routes

    @property
    def killed(self) -> set[str]:
        return self.nodes.killed

    @property
    def paused(self) -> set[str]:
        return self.nodes.paused

    @property
    def departed(self) -> set[str]:
        return self.nodes.departed

    @property
    def intruders(self) -> set[str]:
        return self.nodes.intruders

    @property
    def links(self) -> LinkPlane | None:
        return self.faults.links

    @property
    def packet_faults(self) -> PacketFaults:
        return self.faults.packet_faults

    @property
    def planes(self) -> dict[str, FaultPlane]:
        """The network fault planes, in order of preference."""
        return self.faults.planes

    @planes.setter
    def planes(self, planes: dict[str, FaultPlane]) -> None:
        self.faults.planes = planes

    # ---- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> Cluster:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def start(self) -> None:
        from gossipcert.harness.drivers.clean import sweep_stale_processes

        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.nodes.choose_launch()
        sweep_stale_processes()  # what dead runs left; the Docker backend sweeps its own
        self.nodes.prepare(self.base_port)
        self.faults.pin_sources()
        if self.manifest.accepts_dial_map:
            launch = self.nodes.launch
            udp = (launch is not None and bool(launch.udp_route_args)
                   and self.backend.name in DATAGRAM_BACKENDS)
            self.nodes.routes.update(self.faults.open_link_plane(self.run_dir,
                                                                 self.toxiproxy_url, udp))
            if self.faults.links is not None:
                self.nodes.udp_routes.update(self.faults.links.udp_routes())
        self.nodes.start_all()
        self.events.start()

    def close(self) -> None:
        self.events.stop()
        self.calls.close()
        self.events.close()
        try:
            self.faults.close()
            self.backend.stop_all()
        finally:
            self.faults.close_links()
            self.history.close()

    def record_to(self, history: History) -> None:
        """Flush the events polled so far into the current history, then record
        everything (calls, faults, events) into ``history``: no entry straddles two."""
        self.events.record_to(history)

    # ---- nodes -----------------------------------------------------------------------

    def start_intruder(self, node_id: str, seed_from: str, timeout_s: float = 15.0,
                       key: str | None = None) -> Reply:
        """Start an extra node with a wrong gossip key (:meth:`Nodes.start_intruder`)."""
        return self.nodes.start_intruder(node_id, seed_from, timeout_s, key)

    def stop_intruder(self, node_id: str) -> None:
        self.nodes.stop_intruder(node_id)

    def live_nodes(self) -> list[str]:
        """Nodes that run and answer: not killed, paused or departed."""
        return self.nodes.live_nodes()

    def kill(self, node_id: str) -> None:
        self.events.poll_quietly()
        self.nodes.kill(node_id)

    def pause(self, node_id: str) -> None:
        """Freeze a node (SIGSTOP); returns once the system reports it stopped."""
        self.events.poll_quietly()
        self.nodes.pause(node_id)

    def resume(self, node_id: str) -> None:
        self.nodes.resume(node_id)

    def restart(self, node_id: str) -> None:
        """Kill -9 a node if it runs, start it again as itself, and have it join live peers.

        The history gets a ``restart`` fault, a new ``start`` operation, and a ``join``
        through the peers still up.
        """
        self.events.poll_quietly()
        self.nodes.restart(node_id)
        self.events.forget(node_id)
        self.nodes.back(node_id)
        self.nodes.wait_ready([node_id])
        peers = [n for n in self.live_nodes() if n != node_id]
        if peers:
            self.join(node_id)

    def leave(self, node_id: str) -> bool:
        """Ask a node to leave gracefully; returns once it reports itself ``left`` (True),
        or at once when it answers that it does not implement a leave (False: it stays,
        and the history holds the refusal for the checkers to judge)."""
        reply = self.call(node_id, "leave", {})
        if reply.status == 501:
            return False
        if not reply.ok:
            raise LaunchError(f"node {node_id} refused to leave: status {reply.status}")
        confirmed = self.nodes.wait_left(node_id)
        self.events.poll_quietly()
        self.nodes.record_left(node_id, confirmed)
        return True

    def join(self, node_id: str) -> None:
        """Ask a running node to join through every other live node (their dial
        addresses as this node reaches them)."""
        seeds = [self.nodes.dial(node_id, p) for p in self.live_nodes() if p != node_id]
        if seeds:
            self.call(node_id, "join", {"seeds": seeds})

    # ---- calls -----------------------------------------------------------------------

    def client(self, node_id: str) -> ControlClient:
        return self.calls.client(node_id)

    def call(self, node_id: str, op: str, args: dict[str, Any], fn: Any = None) -> Reply:
        """Run one client call and record its invoke and completion: the contract's
        request for ``op`` and ``args`` (:func:`harness.drivers.interface.request_for`),
        or ``fn()``."""
        return self.calls.call(node_id, op, args, fn)

    def probe_undeclared(self) -> list[str]:
        """One harmless read of each capability the manifest does not declare, on the
        first live node: the contract wants 501. Any other answer is recorded in the
        history and returned (described), for the run to warn about; it is no claimed
        requirement's evidence, so it fails none (``gossipcert check-contract`` does)."""
        from gossipcert.harness.drivers.contract import undeclared_probes

        live = self.live_nodes()
        if not live:
            return []
        declared = [c.partition(":")[0] for c in self.manifest.capabilities]
        found: list[str] = []
        for op, args in undeclared_probes(declared):
            found += self.calls.probe_undeclared(live[0], op, args)
        return found

    def read_round(self, op: str) -> dict[str, Reply]:
        """Read ``members``, ``kv`` or ``metrics`` on every live node; the reads share a
        round number."""
        return self.calls.read_round(op, self.live_nodes())

    def together(self, calls: Sequence[Callable[[], None]]) -> None:
        """Run calls on threads released together by a barrier: concurrent, for real."""
        together(calls)

    # ---- node-side events ------------------------------------------------------------

    def poll_events(self) -> None:
        """Copy new node-side events of every live node into the history."""
        self.events.poll()

    # ---- the cluster interface (harness.drivers.interface.ClusterDriver) ------------

    min_sleep_s = 0.0

    @property
    def capabilities(self) -> list[str]:
        return list(self.manifest.capabilities)

    @property
    def broadcast_ids(self) -> str:
        """The manifest's ``broadcast_ids``: ``integer`` when its messages are integers."""
        return self.manifest.broadcast_ids

    @property
    def has_link_plane(self) -> bool:
        return "link" in self.planes

    @property
    def latency_unavailable(self) -> str | None:
        """Why no plane of this run can delay packets (None: one can)."""
        return self.faults.latency_unavailable()

    @property
    def gossip_key_set(self) -> bool:
        return self.manifest.gossip_key is not None

    def clock(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        self.events.sleep(seconds)

    def raise_failure(self) -> None:
        """Raise the harness failure a background thread met, if one did."""
        self.events.raise_failure()

    # ---- network faults --------------------------------------------------------------

    def traffic(self, periodic: bool = False) -> dict[str, Any] | None:
        """What the planes counted each live member sending, recorded as a ``traffic``
        operation (:meth:`NetworkFaults.traffic`); None when no plane can count."""
        return self.faults.traffic(self.live_nodes(), periodic=periodic)

    def plane_for(self, plane: str) -> str:
        """``auto`` is the link plane when the IUT is routed through it, else packets."""
        return self.faults.plane_for(plane)

    def flow(self, src: str, dst: str) -> Flow:
        """The packets of the directed link ``src -> dst``, as the packet plane matches them."""
        return self.faults.flow(src, dst)

    def cut(self, links: list[tuple[str, str]], *, plane: str = "auto",
            groups: list[list[str]] | None = None, shape: str | None = None) -> None:
        """Cut directed links (both ways only if both directions are listed); recorded as
        a ``partition`` when ``groups`` describe it exactly, else as a ``cut``."""
        self.faults.cut(links, plane=plane, groups=groups, shape=shape)

    def loss(self, links: list[tuple[str, str]], probability: float) -> None:
        """Drop packets on directed links at random (packet plane, TCP and UDP)."""
        self.faults.loss(links, probability)

    def latency(self, links: list[tuple[str, str]], latency_ms: int, jitter_ms: int = 0,
                extra: dict[str, float] | None = None) -> None:
        """Delay everything on directed links (:meth:`NetworkFaults.latency`)."""
        self.faults.latency(links, latency_ms, jitter_ms, extra)

    def heal(self) -> None:
        """Restore every link on every plane; one that fails keeps none of the others
        from healing."""
        self.faults.heal()
