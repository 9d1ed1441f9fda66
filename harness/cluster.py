"""A running cluster of one implementation: nodes on a backend, the link plane between them,
and the history every call, fault and node-side event is written to.

Both ``gossipcert certify`` and the pytest plugin's ``cluster`` fixture drive this class.
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from harness.backends import Backend, NodeAddress, make_backend
from harness.control import ControlClient, Reply
from harness.errors import LaunchError
from harness.history import History
from harness.linkplane import LinkPlane
from harness.manifest import Manifest, process_argv
from harness.procutil import RUN_LABEL_ENV


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
        event_poll_s: float = 0.2,
    ) -> None:
        self.manifest = manifest
        self.node_ids = [f"n{i + 1}" for i in range(n)]
        self.run_dir = run_dir
        self.backend = make_backend(backend) if isinstance(backend, str) else backend
        self.seed = seed
        self.rng = random.Random(seed)
        self.base_port = base_port
        self.toxiproxy_url = toxiproxy_url
        self.history = history if history is not None else History(run_dir / "history.jsonl")
        self.addresses: dict[str, NodeAddress] = {}
        self.routes: dict[str, dict[str, str]] = {}
        self.links: LinkPlane | None = None
        self.killed: set[str] = set()
        self._clients: dict[str, ControlClient] = {}
        self._event_cursor: dict[str, int] = {}
        self._event_clients: dict[str, ControlClient] = {}
        self._event_lock = threading.Lock()
        self._event_poll_s = event_poll_s
        self._poller: threading.Thread | None = None
        self._stop = threading.Event()
        self._round = 0
        self._pending_start: dict[str, int] = {}
        # Every child process of the run carries this label in its environment, so a
        # sweeper (and the tests) can find whatever a crashed run left behind.
        self.run_label = f"gc-{seed}-{os.getpid()}-{int(time.time() * 1000) % 10**9}"

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
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.addresses = self.backend.allocate(self.node_ids, self.base_port)
        if self.manifest.accepts_dial_map:
            self.links = LinkPlane.open(self.run_label, self.run_dir, self.toxiproxy_url)
            self.routes = self.links.build(
                {n: a.gossip_addr for n, a in self.addresses.items()}
            )
        first, rest = self.node_ids[0], self.node_ids[1:]
        self._launch(first, seeds=[])
        self._wait_ready([first])
        for node_id in rest:
            self._launch(node_id, seeds=[self._dial(node_id, first)])
        self._wait_ready(rest)
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
            self.backend.stop_all()
        finally:
            if self.links is not None:
                self.links.close()
                self.links = None
            self.history.close()

    def _dial(self, src: str, dst: str) -> str:
        """How ``src`` reaches ``dst``: through the link proxy when there is one."""
        if dst in self.routes.get(src, {}):
            return self.routes[src][dst]
        return self.addresses[dst].gossip_addr

    def _launch(self, node_id: str, seeds: list[str]) -> None:
        addr = self.addresses[node_id]
        data_dir = self.run_dir / "nodes" / node_id
        data_dir.mkdir(parents=True, exist_ok=True)
        argv = process_argv(
            self.manifest,
            node_id=node_id,
            gossip=addr.gossip,
            control=addr.control,
            seeds=seeds,
            routes=self.routes.get(node_id, {}),
            data_dir=data_dir / "data",
        )
        assert self.manifest.process is not None
        call = self.history.new_call()
        self.history.append("invoke", "start", node=node_id, call=call,
                            args={"argv": argv, "gossip": addr.gossip_addr})
        env = {**self.manifest.process.env, RUN_LABEL_ENV: self.run_label}
        self.backend.start(addr, argv, env, self.manifest.process.cwd, data_dir)
        self._pending_start[node_id] = call

    def _wait_ready(self, node_ids: list[str]) -> None:
        assert self.manifest.process is not None
        timeout_s = self.manifest.process.ready_timeout_s
        deadline = time.monotonic() + timeout_s
        waiting = list(node_ids)
        while waiting:
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
            if waiting and time.monotonic() > deadline:
                raise LaunchError(self._start_failure(
                    waiting[0], f"not ready after {timeout_s:g} s (init timeout)"))
            if waiting:
                time.sleep(0.05)

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
        return [n for n in self.node_ids if n not in self.killed]

    def call(self, node_id: str, op: str, args: dict[str, Any], fn: Any) -> Reply:
        """Run one client call and record its invoke and completion."""
        call = self.history.new_call()
        self.history.append("invoke", op, node=node_id, call=call, args=args)
        reply: Reply = fn()
        result = reply.body if isinstance(reply.body, dict) else {"body": reply.body}
        result = {**result, "status": reply.status}
        if reply.error:
            result = {**result, "harness_error": reply.error}
        self.history.append(reply.outcome, op, node=node_id, call=call, args=args, result=result)
        return reply

    def read_round(self, op: str) -> dict[str, Reply]:
        """Read ``members`` or ``kv`` on every live node; the reads share a round number."""
        self._round += 1
        out = {}
        for node_id in self.live_nodes():
            client = self.client(node_id)
            fn = client.members if op == "members" else client.kv
            out[node_id] = self.call(node_id, op, {"round": self._round}, fn)
        return out

    # ---- faults ----------------------------------------------------------------------

    def kill(self, node_id: str) -> None:
        with contextlib.suppress(Exception):
            self.poll_events()
        self.backend.kill(node_id)
        self.killed.add(node_id)
        self.history.append("fault", "kill", node=node_id, args={"signal": "KILL"})

    def partition(self, groups: list[list[str]]) -> None:
        if self.links is None:
            raise LaunchError("partitions need the link plane (manifest routing: dial-map)")
        self.links.partition(groups)
        if not self.links.confirm_cut():
            raise LaunchError("the link plane did not confirm the partition")
        self.history.append("fault", "partition", args={"groups": groups})

    def heal(self) -> None:
        if self.links is None:
            return
        self.links.heal()
        self.history.append("fault", "heal", args={})

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
                    for event in events:
                        self.history.append(
                            "event", str(event.get("kind", "unknown")), node=node_id,
                            args=event, time_ms=float(event.get("at_ms", 0)),
                        )
                    after = int(reply.body.get("next", after))
                    if not events:
                        break
                self._event_cursor[node_id] = after

    def _poll_loop(self) -> None:
        while not self._stop.wait(self._event_poll_s):
            with contextlib.suppress(Exception):
                self.poll_events()
