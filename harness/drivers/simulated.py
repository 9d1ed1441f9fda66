"""The simulated driver: reference cores in ``reference_node.sim``, behind the cluster
interface (:class:`harness.drivers.interface.ClusterDriver`).

A thin adapter. The simulator runs the sans-IO core on a virtual clock and a simulated
network; every client call goes through the same control-API function the real node
serves (``reference_node.api``), chosen by the same request table as real calls
(:func:`harness.drivers.interface.request_for`); faults map onto the simulator's own. The history
it records has the shape of a real run's, on virtual time, so the same checkers judge it
and every shipped scenario runs here as on processes, in a fraction of the time.

A *core* names a context the cores run inside: ``"module:attribute"`` or
``"path/to/file.py:attribute"``, whose attribute is a zero-argument callable returning a
context manager (a seeded defect patches the reference core there and undoes it on
exit). The empty string is the reference core as shipped.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from gossipcert.harness.drivers.control_client import Reply
from gossipcert.harness.drivers.interface import request_for
from gossipcert.harness.errors import LaunchError
from gossipcert.harness.history import History

__all__ = ["REFERENCE_CAPABILITIES", "SimulatedCluster", "core_context"]

REFERENCE_CAPABILITIES = ["membership", "failure-detection", "broadcast", "kv", "crdt",
                          "events", "metrics", "leave", "encryption"]
START_MS = 1_000_000_000_000  # virtual epoch: times look like wall-clock milliseconds
LINK_LATENCY_MS = 1.0         # about a loopback hop through a proxy
READY_LIMIT_MS = 30_000


def core_context(core: str) -> AbstractContextManager[Any]:
    """The context a named core runs in (see the module docstring)."""
    if not core:
        return contextlib.nullcontext()
    target, _, attribute = core.rpartition(":")
    if not target or not attribute:
        raise ValueError(f"core {core!r} is not 'module:attribute' or 'file.py:attribute'")
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise ValueError(f"core file {target} does not exist")
        name = f"_gossipcert_core_{abs(hash(path.resolve()))}"
        module = sys.modules.get(name)
        if module is None:
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise ValueError(f"cannot load core file {target}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise ValueError(f"cannot import core module {target!r}: {exc}") from None
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise ValueError(f"core {core!r}: {attribute!r} is not a callable in {target}")
    context = factory()
    if not isinstance(context, AbstractContextManager):
        raise ValueError(f"core {core!r}: {attribute}() did not return a context manager")
    return context


class SimulatedCluster:
    """``node_ids`` reference cores in the simulator, recording a history."""

    min_sleep_s = 0.01  # a poll "without pause" still lets 10 virtual ms pass

    def __init__(self, node_ids: Sequence[str], *, timing: Mapping[str, Any],
                 policy: str = "lww", seed: int = 0, gossip_key: str | None = None,
                 capabilities: Sequence[str] = tuple(REFERENCE_CAPABILITIES),
                 history: History | None = None,
                 progress: Callable[[str], None] | None = None) -> None:
        from gossipcert.reference_node.sim import Simulation

        self.node_ids = list(node_ids)
        self.timing = dict(timing)
        self.policy = policy
        self.seed = seed
        self.gossip_key = gossip_key
        self._capabilities = list(capabilities)
        self.progress = progress or (lambda line: None)
        self.sim = Simulation(ids=self.node_ids, config=self._config(), seed=seed,
                              latency_ms=LINK_LATENCY_MS, start_ms=START_MS,
                              gossip_key=gossip_key, wire=gossip_key is not None,
                              count_links=True, start=False)
        self.history = history if history is not None else History()
        self.history.clock = lambda: float(self.sim.now_ms)
        self.killed: set[str] = set()
        self.paused: set[str] = set()
        self.departed: set[str] = set()
        self.intruders: set[str] = set()
        self._round = 0
        self._event_cursor: dict[str, int] = {}
        self._latency: set[tuple[str, str]] = set()

    def _config(self) -> dict[str, Any]:
        from gossipcert.reference_node.core import NodeConfig

        known = NodeConfig.__dataclass_fields__
        config = {k: v for k, v in self.timing.items() if k in known}
        config["conflict_policy"] = self.policy
        return config

    # ---- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> SimulatedCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Every node up, each but the first seeded with the first, as the real cluster
        launches them; returns once every node reports ready."""
        first = self.node_ids[0]
        calls = {}
        for node_id in self.node_ids:
            call = self.history.new_call()
            calls[node_id] = call
            self.history.append("invoke", "start", node=node_id, call=call,
                                args={"gossip": self.sim.address(node_id)})
            self.sim.start_node(node_id, seeds=[] if node_id == first
                                else [self.sim.address(first)])
        waiting = list(self.node_ids)
        limit = self.sim.now_ms + READY_LIMIT_MS
        while waiting and self.sim.now_ms < limit:
            for node_id in list(waiting):
                status, body = self.sim.request(node_id, "GET", "/v1/node")
                if status == 200 and isinstance(body, dict) and body.get("ready"):
                    waiting.remove(node_id)
                    self.history.append("ok", "start", node=node_id, call=calls[node_id],
                                        result=body)
            if waiting:
                self.sim.run_for(50)
        if waiting:
            from gossipcert.harness.errors import LaunchError

            raise LaunchError(f"simulated node {waiting[0]} not ready after "
                              f"{READY_LIMIT_MS / 1000:g} virtual s")

    def close(self) -> None:
        self.poll_events()
        self.history.close()

    # ---- the cluster interface -----------------------------------------------------------

    @property
    def capabilities(self) -> list[str]:
        return list(self._capabilities)

    @property
    def has_link_plane(self) -> bool:
        return True  # the simulated network delays, drops and cuts any directed link

    @property
    def latency_unavailable(self) -> str | None:
        return None

    @property
    def gossip_key_set(self) -> bool:
        return self.gossip_key is not None

    def clock(self) -> float:
        return self.sim.now_ms / 1000.0

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.sim.run_for(max(1, round(seconds * 1000)))
        self.poll_events()

    def live_nodes(self) -> list[str]:
        gone = self.killed | self.paused | self.departed
        return [n for n in self.node_ids if n not in gone]

    def call(self, node_id: str, op: str, args: dict[str, Any]) -> Reply:
        call = self.history.new_call()
        self.history.append("invoke", op, node=node_id, call=call, args=args)
        method, path, payload = request_for(op, args)
        status, body = self.sim.request(node_id, method, path, payload)
        reply = _reply(status, body, mutating=method != "GET")
        result = reply.body if isinstance(reply.body, dict) else {"body": reply.body}
        result = {**result, "status": reply.status}
        if reply.error:
            result = {**result, "harness_error": reply.error}
        self.history.append(reply.outcome, op, node=node_id, call=call, args=args,
                            result=result)
        return reply

    def together(self, calls: Sequence[Callable[[], None]]) -> None:
        # One virtual instant: the calls are concurrent, none sees another's effect
        # through the network before it is made.
        for call in calls:
            call()

    def read_round(self, op: str) -> dict[str, Reply]:
        self._round += 1
        return {node_id: self.call(node_id, op, {"round": self._round})
                for node_id in self.live_nodes()}

    def poll_events(self) -> None:
        """Copy every node's new events into the history; in simulation the poll sees
        each at once, so its time bounds the event on both sides."""
        now = float(self.sim.now_ms)
        for node_id in self.live_nodes():
            after = self._event_cursor.get(node_id, 0)
            status, body = self.sim.request(node_id, "GET", f"/v1/events?after={after}")
            if status != 200 or not isinstance(body, dict):
                continue
            for event in body.get("events") or []:
                self.history.append("event", str(event.get("kind", "unknown")), node=node_id,
                                    args={**event, "polled_ms": now},
                                    time_ms=float(event.get("at_ms", now)))
            self._event_cursor[node_id] = int(body.get("next", after))

    def traffic(self, periodic: bool = False) -> dict[str, Any] | None:
        """Messages each live node sent, as the simulated network counted them. No
        periodic readings: a simulated run's history stays what its steps make it."""
        if periodic:
            return None
        counters = self.sim.link_counters()
        nodes: dict[str, dict[str, Any]] = {}
        for node_id in self.live_nodes():
            mine = [c for (src, _), c in counters.items() if src == node_id]
            nodes[node_id] = {"messages": sum(c.messages for c in mine),
                              "bytes": sum(c.bytes for c in mine), "scope": "link"}
        self._round += 1
        reading = {"plane": "sim", "unit": "messages", "nodes": nodes}
        call = self.history.new_call()
        args = {"round": self._round}
        self.history.append("invoke", "traffic", call=call, args=args)
        self.history.append("ok", "traffic", call=call, args=args, result=reading)
        return reading

    # ---- process faults ------------------------------------------------------------------

    def kill(self, node_id: str) -> None:
        self.poll_events()
        self.sim.crash(node_id)
        self.killed.add(node_id)
        self.history.append("fault", "kill", node=node_id, args={"signal": "KILL"})

    def restart(self, node_id: str) -> None:
        self.poll_events()
        running = node_id not in self.killed
        call = self.history.new_call()
        self.history.append("fault", "restart", node=node_id,
                            args={"was_running": running, "signal": "KILL" if running else None})
        self.history.append("invoke", "start", node=node_id, call=call,
                            args={"gossip": self.sim.address(node_id), "restart": True})
        self.sim.restart(node_id)
        self._event_cursor[node_id] = 0
        self.killed.discard(node_id)
        self.paused.discard(node_id)
        self.departed.discard(node_id)
        status, body = self.sim.request(node_id, "GET", "/v1/node")
        self.history.append("ok", "start", node=node_id, call=call,
                            result=body if isinstance(body, dict) else {})
        self.join(node_id)

    def pause(self, node_id: str) -> None:
        self.poll_events()
        self.sim.pause(node_id)
        self.paused.add(node_id)
        self.history.append("fault", "pause", node=node_id, args={"signal": "STOP"})

    def resume(self, node_id: str) -> None:
        self.sim.resume(node_id)
        self.paused.discard(node_id)
        self.history.append("fault", "resume", node=node_id, args={"signal": "CONT"})

    def leave(self, node_id: str) -> bool:
        reply = self.call(node_id, "leave", {})
        if reply.status == 501:
            return False
        confirmed = False
        if reply.ok:
            limit = self.sim.now_ms + 5000
            while self.sim.now_ms < limit and not confirmed:
                status, body = self.sim.request(node_id, "GET", "/v1/members")
                confirmed = status == 200 and any(
                    m.get("id") == node_id and m.get("status") == "left"
                    for m in body.get("members", []))
                if not confirmed:
                    self.sim.run_for(50)
        self.poll_events()
        self.departed.add(node_id)
        self.history.append("fault", "leave", node=node_id, args={"confirmed": confirmed})
        return True

    def join(self, node_id: str) -> None:
        seeds = [self.sim.address(p) for p in self.live_nodes() if p != node_id]
        if seeds:
            self.call(node_id, "join", {"seeds": seeds})

    def start_intruder(self, node_id: str, seed_from: str) -> object:
        call = self.history.new_call()
        self.history.append("invoke", "start", node=node_id, call=call,
                            args={"gossip": self.sim.address(node_id),
                                  "seeds": [self.sim.address(seed_from)], "key": "wrong"})
        self.sim.add_node(node_id, config=self._config(), gossip_key=_other_key(self.gossip_key),
                          seeds=[self.sim.address(seed_from)])
        self.intruders.add(node_id)
        status, body = self.sim.request(node_id, "GET", "/v1/node")
        self.history.append("ok", "start", node=node_id, call=call, args={"key": "wrong"},
                            result=body if isinstance(body, dict) else {})
        return body

    def stop_intruder(self, node_id: str) -> None:
        self.sim.remove_node(node_id)
        self.intruders.discard(node_id)
        self.history.append("fault", "stop", node=node_id, args={"signal": "KILL", "key": "wrong"})

    # ---- network faults ----------------------------------------------------------------

    def plane_for(self, plane: str) -> str:
        return "sim"

    def cut(self, links: list[tuple[str, str]], *, plane: str = "auto",
            groups: list[list[str]] | None = None, shape: str | None = None) -> None:
        pairs = sorted(set(links))
        for src, dst in pairs:
            self.sim.cut(src, dst)
        args: dict[str, Any] = {"links": [list(p) for p in pairs], "plane": "sim"}
        if shape is not None:
            args["shape"] = shape
        if groups is not None:
            self.history.append("fault", "partition", args={"groups": groups, **args})
        else:
            self.history.append("fault", "cut", args=args)

    def heal(self) -> None:
        self.sim.heal()
        self._latency.clear()
        self.history.append("fault", "heal", args={})

    def latency(self, links: list[tuple[str, str]], latency_ms: int, jitter_ms: int = 0,
                extra: dict[str, float] | None = None) -> None:
        if extra:
            raise LaunchError(f"the simulated network has no {', '.join(sorted(extra))}")
        pairs = sorted(set(links))
        for src, dst in pairs:
            self.sim.set_link_latency(src, dst, latency_ms, jitter_ms)
        self.history.append("fault", "latency", args={
            "links": [list(p) for p in pairs], "latency_ms": latency_ms,
            "jitter_ms": jitter_ms, "plane": "sim"})

    def loss(self, links: list[tuple[str, str]], probability: float) -> None:
        pairs = sorted(set(links))
        for src, dst in pairs:
            self.sim.set_link_loss(src, dst, probability)
        self.history.append("fault", "loss", args={
            "links": [list(p) for p in pairs], "probability": probability, "plane": "sim"})


def _reply(status: int, body: Any, *, mutating: bool) -> Reply:
    if 200 <= status < 300:
        return Reply(status, body, "ok")
    if status == 0:
        error = body.get("error") if isinstance(body, dict) else "unreachable"
        # As over HTTP: a timed-out write may have happened; a refused one did not.
        outcome = "info" if mutating and error == "timeout" else "fail"
        return Reply(0, None, outcome, f"simulated {error}")
    message = body.get("message") if isinstance(body, dict) else None
    return Reply(status, body, "fail", f"HTTP {status}: {message}")


def _other_key(key: str | None) -> str:
    from gossipcert.harness.manifest import new_gossip_key

    other = new_gossip_key()
    while other == key:
        other = new_gossip_key()
    return other


@contextlib.contextmanager
def reference_core() -> Iterator[None]:
    """The reference core unchanged, as a named core (``...simulated:reference_core``)."""
    yield
