"""The cluster's nodes over a backend: their addresses, starting them (in waves, each
ready when its control API says so), stopping, killing, pausing, resuming and restarting
them, and a wrong-key intruder; each step recorded in the history.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from gossipcert.chaos.runlabels import RUN_LABEL_ENV
from gossipcert.harness.drivers.backends import Backend, BackendFeatures, NodeAddress
from gossipcert.harness.drivers.cluster.calls import Recording
from gossipcert.harness.drivers.control_client import ControlClient, Reply
from gossipcert.harness.drivers.hostload import HOST_TOO_BUSY, HostBusy
from gossipcert.harness.drivers.waiting import wait_until
from gossipcert.harness.errors import HostError, LaunchError
from gossipcert.harness.manifest import Launch, Manifest, launch_argv, new_gossip_key

__all__ = ["HOST_BUSY_GRACE", "START_WAVE_PER_CPU", "Nodes"]

# How many nodes start at once per CPU of the host.
START_WAVE_PER_CPU = 4
# When a node is not ready within its init timeout while the host's CPUs are saturated,
# the wait goes on this many timeouts longer before the run ends as the host's failure.
HOST_BUSY_GRACE = 3


def _wait(predicate: Callable[[], object], timeout_s: float, every_s: float = 0.02) -> bool:
    return wait_until(predicate, timeout_s, every_s) is not None


class Nodes:
    """The members ``node_ids`` (and intruders) of one run on ``backend``."""

    def __init__(self, recording: Recording, manifest: Manifest, backend: Backend,
                 features: BackendFeatures, node_ids: list[str], run_dir: Path,
                 run_label: str, client: Callable[[str], ControlClient],
                 progress: Callable[[str], None]) -> None:
        self.recording = recording
        self.manifest = manifest
        self.backend = backend
        self.features = features
        self.node_ids = node_ids
        self.run_dir = run_dir
        self.run_label = run_label
        self.client = client
        self.progress = progress
        # Filled in place (the other parts hold this very mapping).
        self.addresses: dict[str, NodeAddress] = {}
        self.routes: dict[str, dict[str, str]] = {}
        self.udp_routes: dict[str, dict[str, str]] = {}  # where datagrams go (udp_route_args)
        self.killed: set[str] = set()
        self.paused: set[str] = set()
        self.departed: set[str] = set()  # left gracefully
        # Nodes started with a wrong gossip key: not members, so never in ``node_ids`` nor
        # ``live_nodes`` (rounds, convergence and event polls skip them).
        self.intruders: set[str] = set()
        self._pending_start: dict[str, int] = {}
        self.launch: Launch | None = None

    def live_nodes(self) -> list[str]:
        """Nodes that run and answer: not killed, paused or departed."""
        gone = self.killed | self.paused | self.departed
        return [n for n in self.node_ids if n not in gone]

    def dial(self, src: str, dst: str) -> str:
        """How ``src`` reaches ``dst``: through the link proxy when there is one."""
        if dst in self.routes.get(src, {}):
            return self.routes[src][dst]
        return self.addresses[dst].gossip_addr

    # ---- start -----------------------------------------------------------------------

    def choose_launch(self) -> None:
        """The manifest's launch section for this backend (a missing one is its error)."""
        self.launch = self.manifest.launch_for(self.backend.name)

    def prepare(self, base_port: int | None) -> None:
        """The backend's own set-up, then every member's address (none starts yet)."""
        if self.features.prepares is not None:
            self.features.prepares.prepare(self.manifest, self.run_label, self.run_dir,
                                           self.progress)
        self.addresses.update(self.backend.allocate(self.node_ids, base_port))

    def start_all(self) -> None:
        """Start the first member, then the others seeded with it, in waves."""
        first, rest = self.node_ids[0], self.node_ids[1:]
        self._launch(first, seeds=[])
        self.wait_ready([first])
        # In waves: a hundred interpreters starting at once on two cores each take longer
        # than the init timeout, which is a node's own start, not the host's backlog.
        wave = START_WAVE_PER_CPU * (os.cpu_count() or 1)
        for at in range(0, len(rest), wave):
            batch = rest[at:at + wave]
            for node_id in batch:
                self._launch(node_id, seeds=[self.dial(node_id, first)])
            self.wait_ready(batch)
            if len(rest) > wave:
                self.progress(f"{1 + at + len(batch)} of {len(self.node_ids)} nodes ready")

    def _overrides(self) -> dict[str, str] | None:
        values = self.features.template_values
        return None if values is None else values.template_values

    def _launched(self) -> Launch:
        if self.launch is None:
            raise LaunchError("the cluster was not started")
        return self.launch

    def _launch(self, node_id: str, seeds: list[str]) -> None:
        launch = self._launched()
        addr = self.addresses[node_id]
        data_dir = self.run_dir / "nodes" / node_id
        data_dir.mkdir(parents=True, exist_ok=True)
        argv = launch_argv(
            self.manifest,
            launch,
            node_id=node_id,
            gossip=addr.gossip,
            control=addr.control,
            seeds=seeds,
            routes=self.routes.get(node_id, {}),
            data_dir=data_dir / "data",
            overrides=self._overrides(),
            udp_routes=self.udp_routes.get(node_id, {}),
        )
        history = self.recording.history
        call = history.new_call()
        history.append("invoke", "start", node=node_id, call=call,
                       args={"argv": argv, "gossip": addr.gossip_addr})
        env = {**launch.env, RUN_LABEL_ENV: self.run_label}
        self.backend.start(addr, argv, env, launch.cwd, data_dir)
        self._pending_start[node_id] = call

    def wait_ready(self, node_ids: list[str]) -> None:
        timeout_s = self._launched().ready_timeout_s
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
                    self.recording.history.append(
                        "ok", "start", node=node_id, call=self._pending_start[node_id],
                        result=reply.body)
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

    # ---- intruders -------------------------------------------------------------------

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
        launch = self._launched()
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
            self.manifest, launch, node_id=node_id, gossip=addr.gossip,
            control=addr.control, seeds=seeds, routes={}, data_dir=data_dir / "data",
            overrides=self._overrides(), gossip_key=key,
        )
        history = self.recording.history
        call = history.new_call()
        # The argv is not recorded: it holds the key, and "wrong" is all a checker needs.
        history.append("invoke", "start", node=node_id, call=call,
                       args={"gossip": addr.gossip_addr, "seeds": seeds, "key": "wrong"})
        env = {**launch.env, RUN_LABEL_ENV: self.run_label}
        self.backend.start(addr, argv, env, launch.cwd, data_dir)
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
        self.recording.history.append("ok", "start", node=node_id, call=call,
                                      args={"key": "wrong"}, result=answered[-1].body)
        return answered[-1]

    def stop_intruder(self, node_id: str) -> None:
        """SIGKILL a wrong-key node; recorded as a ``stop`` fault (not a ``kill``: it was
        never a member, so no member has anything to detect)."""
        if node_id not in self.intruders:
            raise LaunchError(f"node {node_id!r} is not a wrong-key node")
        self.backend.kill(node_id)
        self.intruders.discard(node_id)
        self.recording.history.append("fault", "stop", node=node_id,
                                      args={"signal": "KILL", "key": "wrong"})

    # ---- process faults --------------------------------------------------------------

    def kill(self, node_id: str) -> None:
        self.backend.kill(node_id)
        self.killed.add(node_id)
        self.recording.history.append("fault", "kill", node=node_id, args={"signal": "KILL"})

    def pause(self, node_id: str) -> None:
        """Freeze a node (SIGSTOP); returns once the system reports it stopped."""
        self.backend.pause(node_id)
        if not _wait(lambda: self.backend.paused(node_id), 5.0):
            raise LaunchError(f"node {node_id} did not stop after the pause signal")
        self.paused.add(node_id)
        self.recording.history.append("fault", "pause", node=node_id, args={"signal": "STOP"})

    def resume(self, node_id: str) -> None:
        self.backend.resume(node_id)
        if not _wait(lambda: not self.backend.paused(node_id), 5.0):
            raise LaunchError(f"node {node_id} did not continue after the resume signal")
        self.paused.discard(node_id)
        self.recording.history.append("fault", "resume", node=node_id,
                                      args={"signal": "CONT"})

    def restart(self, node_id: str) -> None:
        """Kill -9 the node if it runs and start it again as itself; the caller waits for
        it to be ready. Records a ``restart`` fault and the invoke of a new ``start``."""
        running = self.backend.exited(node_id) is None
        history = self.recording.history
        call = history.new_call()
        addr = self.addresses[node_id]
        # A restart ends the running life like a kill (SIGKILL) and the next start begins
        # the new one; ``was_running`` tells a crash-restart apart from a bare restart.
        history.append("fault", "restart", node=node_id,
                       args={"was_running": running, "signal": "KILL" if running else None})
        history.append("invoke", "start", node=node_id, call=call,
                       args={"gossip": addr.gossip_addr, "restart": True})
        self.backend.restart(node_id)
        self._pending_start[node_id] = call

    def back(self, node_id: str) -> None:
        """A restarted node is a live member again."""
        self.killed.discard(node_id)
        self.paused.discard(node_id)
        self.departed.discard(node_id)

    def wait_left(self, node_id: str) -> bool:
        """Whether the node reports itself ``left`` within 5 s."""
        client = self.client(node_id)

        def left() -> bool:
            r = client.members()
            return r.ok and any(m.get("id") == node_id and m.get("status") == "left"
                                for m in r.body.get("members", []))

        return _wait(left, 5.0, 0.05)

    def record_left(self, node_id: str, confirmed: bool) -> None:
        self.departed.add(node_id)
        self.recording.history.append("fault", "leave", node=node_id,
                                      args={"confirmed": confirmed})
