"""A running cluster of one implementation: nodes on a backend, the fault planes between
them, and the history every call, fault and node-side event is written to.

Both ``gossipcert certify`` and the pytest plugin's ``cluster`` fixture drive this class.
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from gossipcert.chaos.packet import Flow, PacketPlane, Sender
from gossipcert.harness.drivers.backends import Backend, NodeAddress, make_backend
from gossipcert.harness.drivers.control_client import ControlClient, Reply
from gossipcert.harness.drivers.faultplanes import FaultPlane, LinkFaults, PacketFaults, choose
from gossipcert.harness.drivers.hostload import HOST_TOO_BUSY, HostBusy
from gossipcert.harness.drivers.interface import request_for
from gossipcert.harness.drivers.linkplane import LinkPlane
from gossipcert.harness.drivers.procutil import RUN_LABEL_ENV
from gossipcert.harness.drivers.waiting import wait_until
from gossipcert.harness.errors import HarnessError, HostError, LaunchError
from gossipcert.harness.history import History, now_ms
from gossipcert.harness.manifest import Manifest, launch_argv, new_gossip_key

# How many nodes start at once per CPU of the host.
START_WAVE_PER_CPU = 4
# How often every node's events are read: at least this often, and at most one request
# per node every this many seconds times the cluster's size.
EVENT_POLL_S = 0.2
# When a node is not ready within its init timeout while the host's CPUs are saturated,
# the wait goes on this many timeouts longer before the run ends as the host's failure.
HOST_BUSY_GRACE = 3
EVENT_POLL_PER_NODE_S = 0.01


def _applied(began_ms: float) -> dict[str, float]:
    """When a network fault was confirmed in effect. The entry itself is stamped when
    its application began: at a hundred nodes a partition is thousands of rules or
    toxics, and links cut early must not look cut before the fault (a suspicion there
    would pass for a false positive)."""
    return {"applied_ms": round(now_ms(), 3), "applying_ms": round(now_ms() - began_ms, 1)}


def _wait(predicate: Callable[[], object], timeout_s: float, every_s: float = 0.02) -> bool:
    return wait_until(predicate, timeout_s, every_s) is not None



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
        self.seed = seed
        self.rng = random.Random(seed)
        self.base_port = base_port
        self.toxiproxy_url = toxiproxy_url
        self.progress = progress or (lambda line: None)
        self.history = history if history is not None else History(run_dir / "history.jsonl")
        self.addresses: dict[str, NodeAddress] = {}
        self.routes: dict[str, dict[str, str]] = {}
        self.links: LinkPlane | None = None
        self.killed: set[str] = set()
        self.paused: set[str] = set()
        self.departed: set[str] = set()  # left gracefully
        # Nodes started with a wrong gossip key: not members, so never in ``node_ids`` nor
        # ``live_nodes`` (rounds, convergence and event polls skip them).
        self.intruders: set[str] = set()
        self._clients: dict[str, ControlClient] = {}
        self._event_cursor: dict[str, int] = {}
        self._event_clients: dict[str, ControlClient] = {}
        self._event_lock = threading.Lock()
        # Each poll is a request to every node: at a hundred nodes, five a second each
        # would cost the nodes more CPU than their gossip. Events carry the node's own
        # time, so a slower poll loosens only the ``polled_ms`` upper bound.
        self._event_poll_s = (event_poll_s if event_poll_s is not None
                              else max(EVENT_POLL_S, EVENT_POLL_PER_NODE_S * n))
        self._poller: threading.Thread | None = None
        self._stop = threading.Event()
        # The first failure of the harness's own parts seen on a background thread (the
        # event poller): the run stops at the next call or sleep of the main thread.
        self._failure: HarnessError | None = None
        self._failed = threading.Event()
        self._round = 0
        self._pending_start: dict[str, int] = {}
        # Every child process of the run carries this label in its environment, so a
        # sweeper (and the tests) can find whatever a crashed run left behind.
        self.run_label = f"gc-{seed}-{os.getpid()}-{int(time.time() * 1000) % 10**9}"
        # The network fault planes, in order of preference: ``start`` puts the link plane
        # first when the IUT is routed through it; the packet plane opens on first use.
        # A backend whose namespaces are elsewhere (the swarm's agents) brings its own.
        packet_plane = getattr(self.backend, "packet_plane", PacketPlane)
        self.packet_faults = PacketFaults(functools.partial(packet_plane, self.run_label),
                                          self.flow, self._sender)
        self.planes: dict[str, FaultPlane] = {"packet": self.packet_faults}

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
        self.launch = self.manifest.launch_for(self.backend.name)
        sweep_stale_processes()  # what dead runs left; the Docker backend sweeps its own
        # A backend with set-up of its own (the Docker backend: image, run network).
        prepare = getattr(self.backend, "prepare", None)
        if prepare is not None:
            prepare(self.manifest, self.run_label, self.run_dir, self.progress)
        self.addresses = self.backend.allocate(self.node_ids, self.base_port)
        source_pins = getattr(self.backend, "source_pins", None)
        if source_pins is not None:
            self.packet_faults.pin(source_pins(self.addresses))
        if self.manifest.accepts_dial_map:
            # A backend whose nodes cannot reach the host's loopback runs the server itself.
            open_server = getattr(self.backend, "open_link_server", None)
            if open_server is not None:
                server = open_server(self.run_dir, self.toxiproxy_url)
                self.links = LinkPlane.open(
                    self.run_label, self.run_dir, server.url,
                    server=server if server.container is not None else None,
                    listen_host=server.listen_host)
            else:
                self.links = LinkPlane.open(self.run_label, self.run_dir, self.toxiproxy_url)
            self.routes = self.links.build(
                {n: a.gossip_addr for n, a in self.addresses.items()}
            )
            self.planes = {"link": LinkFaults(self.links), **self.planes}
        first, rest = self.node_ids[0], self.node_ids[1:]
        self._launch(first, seeds=[])
        self._wait_ready([first])
        # In waves: a hundred interpreters starting at once on two cores each take longer
        # than the init timeout, which is a node's own start, not the host's backlog.
        wave = START_WAVE_PER_CPU * (os.cpu_count() or 1)
        for at in range(0, len(rest), wave):
            batch = rest[at:at + wave]
            for node_id in batch:
                self._launch(node_id, seeds=[self._dial(node_id, first)])
            self._wait_ready(batch)
            if len(rest) > wave:
                self.progress(f"{1 + at + len(batch)} of {len(self.node_ids)} nodes ready")
        self._poller = threading.Thread(target=self._poll_loop, name="event-poller", daemon=True)
        self._poller.start()

    def close(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=5)
            self._poller = None
        with contextlib.suppress(Exception):
            self.poll_events()
        for client in [*self._clients.values(), *self._event_clients.values()]:
            client.close()
        try:
            for plane in self.planes.values():
                with contextlib.suppress(Exception):
                    plane.close()
            self.backend.stop_all()
        finally:
            if self.links is not None:
                self.links.close()
                self.links = None
            self.history.close()

    def start_intruder(self, node_id: str, seed_from: str, timeout_s: float = 15.0,
                       key: str | None = None) -> Reply:
        """Start an extra node with a fresh random key (not the run's) seeded with a live
        member's address; recorded as a ``start`` with ``args.key: "wrong"``.

        It can never join, so it never reports ready: it counts as started once its control
        API answers ``GET /v1/node``. Its address is the next one the backend would give a
        member, so it shares no host or port with one (the link plane has no proxy for it:
        it dials members directly). ``key`` replaces the fresh key (a test handing it the
        run's own key proves the SEC-WRONG-KEY checker fails an admitted node).
        """
        if node_id in self.addresses:
            raise LaunchError(f"node id {node_id!r} is already in use")
        if self.manifest.gossip_key is None:
            raise LaunchError("a wrong-key node needs a run with a gossip key (scenario "
                              "encryption, manifest capability encryption and key_args)")
        addr = self.backend.allocate([*self.node_ids, node_id], None)[node_id]
        self.addresses[node_id] = addr
        data_dir = self.run_dir / "nodes" / node_id
        data_dir.mkdir(parents=True, exist_ok=True)
        if key is None:
            key = new_gossip_key()
            while key == self.manifest.gossip_key:
                key = new_gossip_key()
        seeds = [self.addresses[seed_from].gossip_addr]
        argv = launch_argv(
            self.manifest, self.launch, node_id=node_id, gossip=addr.gossip,
            control=addr.control, seeds=seeds, routes={}, data_dir=data_dir / "data",
            overrides=getattr(self.backend, "template_values", None), gossip_key=key,
        )
        call = self.history.new_call()
        # The argv is not recorded: it holds the key, and "wrong" is all a checker needs.
        self.history.append("invoke", "start", node=node_id, call=call,
                            args={"gossip": addr.gossip_addr, "seeds": seeds, "key": "wrong"})
        env = {**self.launch.env, RUN_LABEL_ENV: self.run_label}
        self.backend.start(addr, argv, env, self.launch.cwd, data_dir)
        self.intruders.add(node_id)
        answered: list[Reply] = []

        def answers() -> bool:
            code = self.backend.exited(node_id)
            if code is not None:
                raise LaunchError(self._start_failure(node_id, f"exited with code {code} "
                                                               "at start"))
            reply = self.client(node_id).node()
            if reply.ok and isinstance(reply.body, dict):
                answered.append(reply)
                return True
            return False

        if wait_until(answers, timeout_s) is None:
            raise LaunchError(self._start_failure(
                node_id, f"control API not answering after {timeout_s:g} s"))
        self.history.append("ok", "start", node=node_id, call=call, args={"key": "wrong"},
                            result=answered[-1].body)
        return answered[-1]

    def stop_intruder(self, node_id: str) -> None:
        """SIGKILL a wrong-key node; recorded as a ``stop`` fault (not a ``kill``: it was
        never a member, so no member has anything to detect)."""
        if node_id not in self.intruders:
            raise LaunchError(f"node {node_id!r} is not a wrong-key node")
        self.backend.kill(node_id)
        self.intruders.discard(node_id)
        self.history.append("fault", "stop", node=node_id,
                            args={"signal": "KILL", "key": "wrong"})

    def _dial(self, src: str, dst: str) -> str:
        """How ``src`` reaches ``dst``: through the link proxy when there is one."""
        if dst in self.routes.get(src, {}):
            return self.routes[src][dst]
        return self.addresses[dst].gossip_addr

    def _launch(self, node_id: str, seeds: list[str]) -> None:
        addr = self.addresses[node_id]
        data_dir = self.run_dir / "nodes" / node_id
        data_dir.mkdir(parents=True, exist_ok=True)
        argv = launch_argv(
            self.manifest,
            self.launch,
            node_id=node_id,
            gossip=addr.gossip,
            control=addr.control,
            seeds=seeds,
            routes=self.routes.get(node_id, {}),
            data_dir=data_dir / "data",
            overrides=getattr(self.backend, "template_values", None),
        )
        call = self.history.new_call()
        self.history.append("invoke", "start", node=node_id, call=call,
                            args={"argv": argv, "gossip": addr.gossip_addr})
        env = {**self.launch.env, RUN_LABEL_ENV: self.run_label}
        self.backend.start(addr, argv, env, self.launch.cwd, data_dir)
        self._pending_start[node_id] = call

    def _wait_ready(self, node_ids: list[str]) -> None:
        timeout_s = self.launch.ready_timeout_s
        waiting = list(node_ids)

        def all_ready() -> bool:
            for node_id in list(waiting):
                code = self.backend.exited(node_id)
                if code is not None:
                    raise LaunchError(self._start_failure(
                        node_id, f"exited with code {code} at start"))
                reply = self.client(node_id).node()
                if reply.ok and isinstance(reply.body, dict) and reply.body.get("ready"):
                    waiting.remove(node_id)
                    self.history.append("ok", "start", node=node_id,
                                        call=self._pending_start[node_id], result=reply.body)
            return not waiting

        busy = HostBusy()
        if wait_until(all_ready, timeout_s) is None:
            share = busy.share()
            if share >= HOST_TOO_BUSY:
                # Not the node's fault: it has not had the CPU to start in. Wait longer;
                # a run that goes on saturated has its timing verdicts made inconclusive.
                self.progress(f"the host's CPUs are {share:.0%} busy ({busy.split()}): "
                              f"waiting up to {HOST_BUSY_GRACE * timeout_s:g} s more for "
                              f"{len(waiting)} node(s) to be ready")
                if wait_until(all_ready, HOST_BUSY_GRACE * timeout_s) is not None:
                    return
                share = busy.share()
            if share >= HOST_TOO_BUSY:
                raise HostError(
                    f"the host could not keep up: node {waiting[0]} was not ready after "
                    f"{(1 + HOST_BUSY_GRACE) * timeout_s:g} s while the host's {busy.cpus} "
                    f"CPU(s) were {share:.0%} busy with {len(self.node_ids)} nodes starting "
                    f"or running ({busy.split()} of all cores)")
            raise LaunchError(self._start_failure(
                waiting[0], f"not ready after {timeout_s:g} s (init timeout)"))

    def _start_failure(self, node_id: str, what: str) -> str:
        tail = self.backend.stderr_tail(node_id, 8)
        log = self.run_dir / "nodes" / node_id / "stderr.log"
        msg = f"node {node_id} {what}; its stderr ({log}):"
        if not tail:
            return msg + " (empty)"
        return msg + "\n" + "\n".join("    " + line for line in tail.splitlines())

    # ---- access ----------------------------------------------------------------------

    def client(self, node_id: str) -> ControlClient:
        if node_id not in self._clients:
            host, port = self.addresses[node_id].control
            self._clients[node_id] = ControlClient(host, port)
        return self._clients[node_id]

    def live_nodes(self) -> list[str]:
        """Nodes that run and answer: not killed, paused or departed."""
        gone = self.killed | self.paused | self.departed
        return [n for n in self.node_ids if n not in gone]

    def call(self, node_id: str, op: str, args: dict[str, Any], fn: Any = None) -> Reply:
        """Run one client call and record its invoke and completion: the contract's
        request for ``op`` and ``args`` (:func:`harness.drivers.interface.request_for`),
        or ``fn()``."""
        self.raise_failure()
        call = self.history.new_call()
        self.history.append("invoke", op, node=node_id, call=call, args=args)
        if fn is None:
            client = self.client(node_id)
            reply: Reply = client.request(*request_for(op, args))
        else:
            reply = fn()
        result = reply.body if isinstance(reply.body, dict) else {"body": reply.body}
        result = {**result, "status": reply.status}
        if reply.error:
            result = {**result, "harness_error": reply.error}
        self.history.append(reply.outcome, op, node=node_id, call=call, args=args, result=result)
        return reply

    def read_round(self, op: str) -> dict[str, Reply]:
        """Read ``members``, ``kv`` or ``metrics`` on every live node; the reads share a
        round number."""
        self._round += 1
        return {node_id: self.call(node_id, op, {"round": self._round})
                for node_id in self.live_nodes()}

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
    def gossip_key_set(self) -> bool:
        return self.manifest.gossip_key is not None

    def clock(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if self._failed.wait(max(0.0, seconds)):
            self.raise_failure()

    def raise_failure(self) -> None:
        """Raise the harness failure a background thread met, if one did."""
        if self._failure is not None:
            raise self._failure

    def together(self, calls: Sequence[Callable[[], None]]) -> None:
        """Run calls on threads released together by a barrier: concurrent, for real."""
        if not calls:
            return
        barrier = threading.Barrier(len(calls))

        def one(call: Callable[[], None]) -> None:
            barrier.wait()
            call()

        threads = [threading.Thread(target=one, args=(c,)) for c in calls]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def join(self, node_id: str) -> None:
        """Ask a running node to join through every other live node (their dial
        addresses as this node reaches them)."""
        seeds = [self._dial(node_id, p) for p in self.live_nodes() if p != node_id]
        if seeds:
            self.call(node_id, "join", {"seeds": seeds})

    # ---- traffic the planes relay ------------------------------------------------------

    def traffic(self) -> dict[str, Any] | None:
        """Read what the planes counted each live member sending, record the reading as a
        ``traffic`` operation (see :mod:`harness.history`) and return its result; None,
        with nothing recorded, when no plane can count.

        The plane of first choice counts: the link plane (``routing: dial-map``) reads
        every proxy's counters (our server's extension; a real Toxiproxy has none), else
        the packet plane counts with iptables (root only). Counters only grow: a reader
        takes the difference between two readings.
        """
        invoked = now_ms()
        counter = next(iter(self.planes.values()), None)
        result = counter.traffic(self.live_nodes()) if counter is not None else None
        if result is None:
            return None
        self._round += 1
        call = self.history.new_call()
        args = {"round": self._round}
        self.history.append("invoke", "traffic", call=call, args=args, time_ms=invoked)
        self.history.append("ok", "traffic", call=call, args=args, result=result)
        return result

    # ---- faults ----------------------------------------------------------------------

    def kill(self, node_id: str) -> None:
        with contextlib.suppress(Exception):
            self.poll_events()
        self.backend.kill(node_id)
        self.killed.add(node_id)
        self.history.append("fault", "kill", node=node_id, args={"signal": "KILL"})

    def heal(self) -> None:
        """Restore every link on every plane; each confirms its own heal, and one that
        fails keeps none of the others from healing."""
        failed: list[Exception] = []
        for plane in self.planes.values():
            try:
                plane.heal()
            except Exception as exc:
                failed.append(exc)
        if failed:
            raise failed[0]
        self.history.append("fault", "heal", args={})

    # ---- more faults: one-way cuts, loss, latency, process plane ------------------------

    def plane_for(self, plane: str) -> str:
        """``auto`` is the link plane when the IUT is routed through it, else packets."""
        return choose(self.planes, "cut", plane).name

    def flow(self, src: str, dst: str) -> Flow:
        """The packets of the directed link ``src -> dst``, as the packet plane matches them."""
        src_pid, dst_pid = self.backend.netns_pid(src), self.backend.netns_pid(dst)
        proxied = self.links is not None and (src, dst) in self.links.listen
        if proxied:
            assert self.links is not None
            host, _, port = self.links.listen[(src, dst)].rpartition(":")
            if src_pid is not None:  # leaving the sender's namespace for the proxy
                return Flow(dst=host, dports=(int(port),), protocols=("tcp",),
                            netns_pid=src_pid, hook="OUTPUT")
            return Flow(dst=host, dports=(int(port),), protocols=("tcp",))
        a, b = self.addresses[src], self.addresses[dst]
        if dst_pid is not None:
            return Flow(src=a.gossip[0], dst=b.gossip[0], netns_pid=dst_pid)
        if src_pid is not None:
            return Flow(src=a.gossip[0], dst=b.gossip[0], netns_pid=src_pid, hook="OUTPUT")
        return Flow(src=a.gossip[0], dst=b.gossip[0], ports=(a.gossip[1], b.gossip[1]),
                    nat_replies=self._cgroup(src) is not None)

    def _cgroup(self, node_id: str) -> str | None:
        """The node's own cgroup, where the backend gives it one (pinned process nodes)."""
        cgroup = getattr(self.backend, "cgroup", None)
        return None if cgroup is None else cgroup(node_id)

    def _sender(self, node_id: str) -> Sender:
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
                                **_applied(began)}
        if shape is not None:
            args["shape"] = shape
        if groups is not None:
            self.history.append("fault", "partition", args={"groups": groups, **args},
                                time_ms=began)
        else:
            self.history.append("fault", "cut", args=args, time_ms=began)

    def loss(self, links: list[tuple[str, str]], probability: float) -> None:
        """Drop packets on directed links at random (packet plane, TCP and UDP)."""
        chosen = choose(self.planes, "loss")
        pairs = sorted(set(links))
        began = now_ms()
        chosen.loss(pairs, probability)
        self.history.append("fault", "loss", args={
            "links": [list(p) for p in pairs], "probability": probability, "plane": chosen.name,
            **_applied(began)}, time_ms=began)

    def latency(self, links: list[tuple[str, str]], latency_ms: int, jitter_ms: int = 0) -> None:
        """Delay every chunk on directed links (link plane ``latency`` toxics, both streams)."""
        chosen = choose(self.planes, "latency")
        pairs = sorted(set(links))
        began = now_ms()
        chosen.latency(pairs, latency_ms, jitter_ms)
        self.history.append("fault", "latency", args={
            "links": [list(p) for p in pairs], "latency_ms": latency_ms,
            "jitter_ms": jitter_ms, "plane": chosen.name, **_applied(began)}, time_ms=began)

    def pause(self, node_id: str) -> None:
        """Freeze a node (SIGSTOP); returns once the system reports it stopped."""
        with contextlib.suppress(Exception):
            self.poll_events()
        self.backend.pause(node_id)
        if not _wait(lambda: self.backend.paused(node_id), 5.0):
            raise LaunchError(f"node {node_id} did not stop after the pause signal")
        self.paused.add(node_id)
        self.history.append("fault", "pause", node=node_id, args={"signal": "STOP"})

    def resume(self, node_id: str) -> None:
        self.backend.resume(node_id)
        if not _wait(lambda: not self.backend.paused(node_id), 5.0):
            raise LaunchError(f"node {node_id} did not continue after the resume signal")
        self.paused.discard(node_id)
        self.history.append("fault", "resume", node=node_id, args={"signal": "CONT"})

    def restart(self, node_id: str) -> None:
        """Kill -9 a node if it runs, start it again as itself, and have it join live peers.

        The history gets a ``restart`` fault, a new ``start`` operation, and a ``join``
        through the peers still up.
        """
        with contextlib.suppress(Exception):
            self.poll_events()
        running = self.backend.exited(node_id) is None
        call = self.history.new_call()
        addr = self.addresses[node_id]
        # A restart ends the running life like a kill (SIGKILL) and the next start begins
        # the new one; ``was_running`` tells a crash-restart apart from a bare restart.
        self.history.append("fault", "restart", node=node_id,
                            args={"was_running": running, "signal": "KILL" if running else None})
        self.history.append("invoke", "start", node=node_id, call=call,
                            args={"gossip": addr.gossip_addr, "restart": True})
        self.backend.restart(node_id)
        self._pending_start[node_id] = call
        with self._event_lock:
            self._event_cursor[node_id] = 0  # a new process numbers its events afresh
            client = self._event_clients.pop(node_id, None)
        if client is not None:
            client.close()
        self.killed.discard(node_id)
        self.paused.discard(node_id)
        self.departed.discard(node_id)
        self._wait_ready([node_id])
        peers = [n for n in self.live_nodes() if n != node_id]
        if peers:
            self.join(node_id)

    def leave(self, node_id: str) -> None:
        """Ask a node to leave gracefully; returns once it reports itself ``left``."""
        client = self.client(node_id)
        reply = self.call(node_id, "leave", {})
        if not reply.ok:
            raise LaunchError(f"node {node_id} refused to leave: status {reply.status}")

        def left() -> bool:
            r = client.members()
            return r.ok and any(m.get("id") == node_id and m.get("status") == "left"
                                for m in r.body.get("members", []))

        confirmed = _wait(left, 5.0, 0.05)
        with contextlib.suppress(Exception):
            self.poll_events()
        self.departed.add(node_id)
        self.history.append("fault", "leave", node=node_id, args={"confirmed": confirmed})

    # ---- node-side events ------------------------------------------------------------

    def poll_events(self) -> None:
        """Copy new node-side events of every live node into the history."""
        with self._event_lock:
            for node_id in self.live_nodes():
                if node_id not in self._event_clients:
                    host, port = self.addresses[node_id].control
                    self._event_clients[node_id] = ControlClient(host, port)
                client = self._event_clients[node_id]
                after = self._event_cursor.get(node_id, 0)
                while True:
                    reply = client.events(after)
                    if not reply.ok or not isinstance(reply.body, dict):
                        break
                    events = reply.body.get("events") or []
                    polled = now_ms()  # the harness's upper bound on every event read here
                    for event in events:
                        self.history.append(
                            "event", str(event.get("kind", "unknown")), node=node_id,
                            args={**event, "polled_ms": polled},
                            time_ms=float(event.get("at_ms", 0)),
                        )
                    after = int(reply.body.get("next", after))
                    if not events:
                        break
                self._event_cursor[node_id] = after

    def _poll_loop(self) -> None:
        while not self._stop.wait(self._event_poll_s):
            try:
                self.poll_events()
            except HarnessError as exc:
                self._failure = exc
                self._failed.set()
                return
            except Exception:  # a node's bad answer: the reads judge the node, not this
                pass
