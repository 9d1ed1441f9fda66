"""Property-based certification: Hypothesis workloads and fault schedules, run against a
cluster of sans-IO reference cores in memory, judged by the requirement catalogue.

Three layers, each usable alone:

* :class:`SimCluster` drives ``reference_node.core.node.Node`` objects under a virtual
  clock and an in-memory network (per-link cuts, fixed latency), and records a history
  in the same contract as a real run (:mod:`harness.history`), so the very checkers
  that judge real clusters judge it.
* :func:`run_schedule` runs a *schedule*, a plain list of steps (data, JSON-ready), and
  returns the verdicts; a schedule file replays with ``gossipcert replay FILE``.
* Strategies (:func:`workload_steps`, :func:`fault_steps`, :func:`schedules`) and the
  :class:`ClusterMachine` state machine, whose invariant is "every MUST requirement that
  applies passes". Another implementation of the core reuses them by subclassing
  ``ClusterMachine`` (override :attr:`ClusterMachine.core`).

Rules are deterministic: the cores seed their own generators from their ids, the
network has no randomness, and time only moves when a step says so; so Hypothesis can
shrink a failure to a minimal schedule, which :func:`save_schedule` writes down.

A *core* is named by a string ``"module:attribute"`` or ``"path/to/file.py:attribute"``
whose attribute is a zero-argument callable returning a context manager: the cluster runs
inside it (a seeded defect patches the reference core there and undoes it on exit). The
empty string is the reference core as shipped.
"""

from __future__ import annotations

import contextlib
import heapq
import importlib
import importlib.util
import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gossipcert.harness.checkers import run_checks
from gossipcert.harness.history import Entry, History
from gossipcert.harness.verdict import Requirement, Verdict, load_catalogue
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

__all__ = [
    "DEFAULT_TIMING",
    "SCHEDULE_FORMAT",
    "ClusterMachine",
    "Schedule",
    "SimCluster",
    "failures",
    "fault_steps",
    "load_schedule",
    "register_profiles",
    "run_schedule",
    "save_schedule",
    "schedules",
    "workload_steps",
]

SCHEDULE_FORMAT = "gossipcert-schedule/1"

# The reference manifest's timing: fast enough that a settle is a few virtual seconds.
DEFAULT_TIMING: dict[str, int] = {
    "probe_interval_ms": 300,
    "probe_timeout_ms": 150,
    "indirect_checks": 3,
    "suspicion_mult": 4,
    "suspicion_max_timeout_mult": 6,
    "gossip_interval_ms": 100,
    "fanout": 3,
    "retransmit_mult": 4,
    "push_pull_interval_ms": 1000,
}
LINK_LATENCY_MS = 2
START_MS = 1_000_000
ADVANCE_CHOICES_MS = (0, 50, 200, 1000)


def register_profiles() -> None:
    """``ci``: a fixed, derandomized budget; ``long``: a deep local search
    (``HYPOTHESIS_PROFILE=long``); ``dev``: a quick look."""
    common: dict[str, Any] = {"deadline": None, "print_blob": True}
    settings.register_profile("ci", max_examples=25, derandomize=True, **common)
    settings.register_profile("dev", max_examples=10, **common)
    settings.register_profile("long", max_examples=1000, **common)


register_profiles()


# --------------------------------------------------------------------------- cores


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


# --------------------------------------------------------------------------- the cluster


class SimCluster:
    """Reference cores on an in-memory network under a virtual clock, recording a history."""

    def __init__(
        self,
        nodes: Sequence[str],
        *,
        timing: Mapping[str, int] | None = None,
        policy: str = "lww",
        seed: int = 0,
    ) -> None:
        from gossipcert.reference_node.core import Node, NodeConfig  # lazily: the core is optional

        self._node_type = Node
        self._config_type = NodeConfig
        self.ids = list(nodes)
        self.timing = dict(timing or DEFAULT_TIMING)
        self.policy = policy
        self.now = START_MS
        self.history = History()
        self.nodes: dict[str, Any] = {}
        self.crashed: set[str] = set()
        self.cut: set[tuple[str, str]] = set()
        self.messages = 0
        self._by_address = {self.address(n): n for n in self.ids}
        self._queue: list[tuple[int, int, str, str, Any]] = []
        self._counter = 0
        self._round = 0
        self.history.append(
            "meta",
            "run",
            time_ms=self.now,
            args={
                "implementation": "in-memory reference core",
                "seed": seed,
                "nodes": self.ids,
                "timing": self.timing,
                "conflict_policy": policy,
                "capabilities": ["membership", "failure-detection", "broadcast", "kv", "events"],
                "backend": "memory",
            },
        )

    @staticmethod
    def address(node_id: str) -> str:
        return f"{node_id}:7946"

    # ---- lifecycle --------------------------------------------------------------------

    def _spawn(self, node_id: str, seeds: Sequence[str]) -> None:
        call = self.history.new_call()
        self.history.append("invoke", "start", node=node_id, call=call, time_ms=self.now)
        fields: dict[str, Any] = {
            k: v for k, v in self.timing.items() if k in self._config_type.__dataclass_fields__
        }
        fields.update(
            node_id=node_id, gossip_address=self.address(node_id), conflict_policy=self.policy
        )
        config = self._config_type(**fields)
        node = self._node_type(config, self.now)
        self.nodes[node_id] = node
        self.crashed.discard(node_id)
        if seeds:
            node.join([self.address(s) for s in seeds], self.now)
        self.history.append("ok", "start", node=node_id, call=call, time_ms=self.now)
        self._drain(node_id)

    def start(self) -> None:
        """Every node up, joining through the first; then run until membership settles."""
        for i, node_id in enumerate(self.ids):
            self._spawn(node_id, self.ids[:1] if i else [])
        self.advance(3000)
        self.read_round()

    def crash(self, node_id: str) -> None:
        if node_id in self.crashed:
            return
        self.crashed.add(node_id)
        self.history.append(
            "fault", "kill", node=node_id, time_ms=self.now, args={"signal": "KILL"}
        )

    def restart(self, node_id: str) -> None:
        """A fresh core under the same id (its state gone), joining through a live node."""
        if node_id not in self.crashed:
            self.crashed.add(node_id)
            self.history.append("fault", "restart", node=node_id, time_ms=self.now)
        old = self.nodes[node_id]
        seeds = [n for n in self.ids if n not in self.crashed and n != node_id][:1]
        self._spawn(node_id, seeds)
        restore = getattr(self.nodes[node_id], "restore_incarnation", None)
        if restore is not None:
            restore(old.incarnation, self.now)
            self._drain(node_id)

    def partition(self, groups: Sequence[Sequence[str]]) -> None:
        for group in groups:
            for other in groups:
                if other is not group:
                    self.cut |= {(a, b) for a in group for b in other}
        self.history.append(
            "fault", "partition", time_ms=self.now, args={"groups": [list(g) for g in groups]}
        )

    def heal(self) -> None:
        if self.cut:
            self.cut.clear()
            self.history.append("fault", "heal", time_ms=self.now)

    # ---- client calls -----------------------------------------------------------------

    def _call(
        self, op: str, node_id: str, args: dict[str, Any], body: Callable[[Any], Any]
    ) -> None:
        call = self.history.new_call()
        self.history.append("invoke", op, node=node_id, call=call, args=args, time_ms=self.now)
        if node_id in self.crashed:
            self.history.append(
                "fail",
                op,
                node=node_id,
                call=call,
                args=args,
                result={"error": "unavailable", "message": "connection refused"},
                time_ms=self.now,
            )
            return
        result = body(self.nodes[node_id])
        self.history.append(
            "ok", op, node=node_id, call=call, args=args, result=result, time_ms=self.now
        )
        self._drain(node_id)

    def put(self, node_id: str, key: str, value: Any) -> None:
        def body(node: Any) -> dict[str, Any]:
            state = node.kv_put(key, value, self.now)
            return {"context": None, **_stamp(state, node_id)}

        self._call("put", node_id, {"key": key, "value": value}, body)

    def delete(self, node_id: str, key: str) -> None:
        def body(node: Any) -> dict[str, Any]:
            return _stamp(node.kv_delete(key, self.now), node_id)

        self._call("delete", node_id, {"key": key}, body)

    def broadcast(self, node_id: str, broadcast_id: str) -> None:
        def body(node: Any) -> dict[str, Any]:
            node.broadcast(broadcast_id, {"from": node_id}, self.now)
            return {}

        self._call("broadcast", node_id, {"id": broadcast_id, "payload": {"from": node_id}}, body)

    def leave(self, node_id: str) -> None:
        def body(node: Any) -> dict[str, Any]:
            node.leave(self.now)
            return {}

        self._call("leave", node_id, {}, body)

    # ---- observation ------------------------------------------------------------------

    def read_round(self) -> None:
        """A members, kv and broadcasts read of every live node, as certify takes them."""
        self._round += 1
        for node_id in self.ids:
            if node_id in self.crashed or self.nodes[node_id].stopped:
                continue
            node = self.nodes[node_id]
            members = [
                {
                    "id": m.id,
                    "address": m.address,
                    "status": str(m.status),
                    "incarnation": m.incarnation,
                }
                for m in node.member_list()
            ]
            self._read("members", node_id, {"members": members})
            entries = {k: {"values": v} for k, v in node.kv.visible().items()}
            self._read("kv", node_id, {"digest": node.kv.digest(), "entries": entries})
            received = [
                {"id": d.id, "origin": d.origin, "at_ms": d.at_ms}
                for d in node.delivered_broadcasts()
            ]
            self._read("broadcasts", node_id, {"received": received})

    def _read(self, op: str, node_id: str, result: dict[str, Any]) -> None:
        call = self.history.new_call()
        args = {"round": self._round}
        self.history.append("invoke", op, node=node_id, call=call, args=args, time_ms=self.now)
        self.history.append(
            "ok", op, node=node_id, call=call, args=args, result=result, time_ms=self.now
        )

    # ---- the network and the clock ----------------------------------------------------

    def _drain(self, node_id: str) -> None:
        from gossipcert.reference_node.core import Observed, SendMessage

        for effect in self.nodes[node_id].take_effects():
            if isinstance(effect, Observed):
                self._event(node_id, effect.event)
            elif isinstance(effect, SendMessage):
                dest = effect.to_id if effect.to_id in self.nodes else None
                dest = dest or self._by_address.get(effect.address)
                self.messages += 1
                if dest is None or (node_id, dest) in self.cut:
                    continue
                self._counter += 1
                heapq.heappush(
                    self._queue,
                    (self.now + LINK_LATENCY_MS, self._counter, node_id, dest, effect.message),
                )

    def _event(self, node_id: str, event: Any) -> None:
        args: dict[str, Any] = {"seq": event.seq, "at_ms": event.at_ms, "kind": event.kind}
        if event.kind == "member":
            args.update(
                member=event.member, status=str(event.status), incarnation=event.incarnation
            )
        else:
            args.update(id=event.id, origin=getattr(event, "origin", None))
        # The simulator sees every event as it happens: the virtual now bounds its time on
        # both sides, as a poll bounds it from above on real nodes.
        args.update(polled_ms=self.now, observed_after_ms=self.now)
        self.history.append("event", event.kind, node=node_id, args=args, time_ms=event.at_ms)

    def advance(self, duration_ms: int) -> None:
        """Run the cluster for ``duration_ms`` of virtual time."""
        until = self.now + max(0, int(duration_ms))
        while True:
            live = [(i, n) for i, n in self.nodes.items() if i not in self.crashed]
            deadlines = [n.next_deadline_ms() for _, n in live]
            if self._queue:
                deadlines.append(self._queue[0][0])
            step = min(deadlines, default=until + 1)
            if step > until:
                self.now = until
                return
            self.now = max(self.now, step)
            while self._queue and self._queue[0][0] <= self.now:
                _, _, src, dest, message = heapq.heappop(self._queue)
                if dest in self.crashed or (src, dest) in self.cut:
                    continue
                self.nodes[dest].receive(message, self.now)
                self._drain(dest)
            for node_id, node in live:
                if node_id not in self.crashed and node.next_deadline_ms() <= self.now:
                    node.tick(self.now)
                    self._drain(node_id)

    def entries(self) -> list[Entry]:
        return self.history.entries()


def _stamp(state: Any, node_id: str) -> dict[str, Any]:
    """The HLC timestamp of the sibling a local write created (newest of this writer)."""
    mine = [s for s in getattr(state, "siblings", ()) if s.writer == node_id]
    if not mine:
        return {}
    newest = max(mine, key=lambda s: (s.timestamp.wall_ms, s.timestamp.logical))
    return {"timestamp": [newest.timestamp.wall_ms, newest.timestamp.logical]}


# --------------------------------------------------------------------------- schedules


@dataclass
class Schedule:
    """A run as data: the cluster, the core, and the steps. JSON-ready."""

    nodes: list[str]
    steps: list[dict[str, Any]]
    core: str = ""
    policy: str = "lww"
    timing: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_TIMING))
    failure: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": SCHEDULE_FORMAT,
            "nodes": self.nodes,
            "core": self.core,
            "policy": self.policy,
            "timing": self.timing,
            "steps": self.steps,
        }
        if self.failure is not None:
            out["failure"] = self.failure
        return out


class ScheduleError(ValueError):
    """A schedule file is malformed."""


_STEP_FIELDS: dict[str, tuple[str, ...]] = {
    "put": ("node", "key", "value"),
    "delete": ("node", "key"),
    "broadcast": ("node", "id"),
    "leave": ("node",),
    "crash": ("node",),
    "restart": ("node",),
    "partition": ("groups",),
    "heal": (),
    "advance": ("ms",),
    "settle": (),
}


def load_schedule(path: Path) -> Schedule:
    """Read and validate a schedule file (JSON); ScheduleError names what is wrong."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScheduleError(f"cannot read {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ScheduleError(f"{path} is not JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(data, dict) or data.get("format") != SCHEDULE_FORMAT:
        raise ScheduleError(f"{path} is not a {SCHEDULE_FORMAT} file (no matching 'format')")
    nodes = data.get("nodes")
    steps = data.get("steps")
    if not isinstance(nodes, list) or len(nodes) < 2 or not all(isinstance(n, str) for n in nodes):
        raise ScheduleError(f"{path}: 'nodes' must list at least two node ids")
    if not isinstance(steps, list):
        raise ScheduleError(f"{path}: 'steps' must be a list")
    for i, step in enumerate(steps):
        if not isinstance(step, dict) or step.get("op") not in _STEP_FIELDS:
            raise ScheduleError(
                f"{path}: step {i} has no known 'op' (known: {', '.join(sorted(_STEP_FIELDS))})"
            )
        missing = [f for f in _STEP_FIELDS[step["op"]] if f not in step]
        if missing:
            raise ScheduleError(f"{path}: step {i} ({step['op']}) lacks {missing}")
        if "node" in step and step["node"] not in nodes:
            raise ScheduleError(f"{path}: step {i} names unknown node {step['node']!r}")
    timing = data.get("timing") or DEFAULT_TIMING
    return Schedule(
        nodes=list(nodes),
        steps=list(steps),
        core=str(data.get("core") or ""),
        policy=str(data.get("policy") or "lww"),
        timing={str(k): int(v) for k, v in timing.items()},
        failure=data.get("failure"),
    )


def save_schedule(path: Path, schedule: Schedule) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(schedule.to_dict(), indent=2) + "\n", encoding="utf-8")


def settle_ms(timing: Mapping[str, int], n: int, catalogue: Sequence[Requirement]) -> int:
    """Virtual time after which every timed requirement's deadline has passed."""
    from gossipcert.harness.bounds import derived_parameters, evaluate

    params = derived_parameters(timing, n)
    bounds = [evaluate(r.bound, {**params, **r.constants}) for r in catalogue if r.unit == "ms"]
    return int(max(bounds, default=10_000)) + 500


def apply_step(cluster: SimCluster, step: Mapping[str, Any], settle: int) -> None:
    op = step["op"]
    if op == "put":
        cluster.put(step["node"], step["key"], step["value"])
    elif op == "delete":
        cluster.delete(step["node"], step["key"])
    elif op == "broadcast":
        cluster.broadcast(step["node"], step["id"])
    elif op == "leave":
        cluster.leave(step["node"])
    elif op == "crash":
        cluster.crash(step["node"])
    elif op == "restart":
        cluster.restart(step["node"])
    elif op == "partition":
        cluster.partition(step["groups"])
    elif op == "heal":
        cluster.heal()
    elif op == "advance":
        cluster.advance(int(step["ms"]))
    elif op == "settle":
        settle_cluster(cluster, settle)


def settle_cluster(cluster: SimCluster, settle: int) -> None:
    """Heal, let every deadline pass (reading as certify polls), and read everything."""
    cluster.heal()
    cluster.history.append("phase", "writes", args={"edge": "end"}, time_ms=cluster.now)
    for _ in range(4):
        cluster.advance(settle // 4)
        cluster.read_round()


def failures(verdicts: Sequence[Verdict]) -> list[Verdict]:
    """The MUST requirements that failed or errored."""
    return [v for v in verdicts if v.level == "MUST" and v.status in ("fail", "error")]


def run_schedule(
    schedule: Schedule, catalogue: Sequence[Requirement] | None = None
) -> tuple[list[Verdict], SimCluster]:
    """Run a schedule from a fresh cluster (ending with a settle) and judge its history."""
    catalogue = list(catalogue if catalogue is not None else load_catalogue())
    settle = settle_ms(schedule.timing, len(schedule.nodes), catalogue)
    with core_context(schedule.core):
        cluster = SimCluster(schedule.nodes, timing=schedule.timing, policy=schedule.policy)
        cluster.start()
        for step in schedule.steps:
            apply_step(cluster, step, settle)
        settle_cluster(cluster, settle)
    return run_checks(cluster.entries(), catalogue), cluster


# --------------------------------------------------------------------------- strategies


def workload_steps(
    nodes: Sequence[str], keys: Sequence[str] = ("k0", "k1")
) -> st.SearchStrategy[dict[str, Any]]:
    """One client step: a put, delete or broadcast on any node, or time passing. Values
    are unique per draw position only through shrinking-friendly small integers."""
    node = st.sampled_from(list(nodes))
    key = st.sampled_from(list(keys))
    return st.one_of(
        st.builds(
            lambda n, k, v: {"op": "put", "node": n, "key": k, "value": f"{n}-{v}"},
            node,
            key,
            st.integers(0, 3),
        ),
        st.builds(lambda n, k: {"op": "delete", "node": n, "key": k}, node, key),
        st.builds(
            lambda n, i: {"op": "broadcast", "node": n, "id": f"b{i}"}, node, st.integers(0, 3)
        ),
        st.builds(lambda ms: {"op": "advance", "ms": ms}, st.sampled_from(ADVANCE_CHOICES_MS)),
    )


def membership_steps(nodes: Sequence[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Leaves of any node but the first (it is every restart's seed)."""
    return st.builds(lambda n: {"op": "leave", "node": n}, st.sampled_from(list(nodes[1:])))


def fault_steps(nodes: Sequence[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Which fault, where: a crash or restart of a node, a partition into two sides, a
    heal; when and how long come from where it falls among workload steps and advances."""
    node = st.sampled_from(list(nodes[1:]))
    side = st.sets(st.sampled_from(list(nodes)), min_size=1, max_size=len(nodes) - 1)

    def split(chosen: set[str]) -> dict[str, Any]:
        left = sorted(chosen)
        right = [n for n in nodes if n not in chosen]
        return {"op": "partition", "groups": [left, right]}

    return st.one_of(
        st.builds(lambda n: {"op": "crash", "node": n}, node),
        st.builds(lambda n: {"op": "restart", "node": n}, node),
        side.map(split),
        st.just({"op": "heal"}),
    )


def schedules(
    nodes: Sequence[str] = ("n1", "n2", "n3"),
    *,
    faults: bool = True,
    membership: bool = False,
    max_steps: int = 12,
    keys: Sequence[str] = ("k0", "k1"),
) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Workload and faults interleaved: faults land between (so overlap) client steps."""
    parts = [workload_steps(nodes, keys)]
    if faults:
        parts.append(fault_steps(nodes))
    if membership:
        parts.append(membership_steps(nodes))
    return st.lists(st.one_of(*parts), max_size=max_steps)


# --------------------------------------------------------------------------- the machine


class ClusterMachine(RuleBasedStateMachine):
    """Operations and faults as rules; the requirement catalogue as the invariant.

    The invariant judges the history after each ``settle`` (when every deadline has
    passed); a failure saves the steps so far to :attr:`save_to` (the last save is the
    shrunk example, which Hypothesis replays last), ready for ``gossipcert replay``.
    Subclass and set ``core``/``nodes``/``save_to`` to certify another core.
    """

    core: str = ""
    nodes: tuple[str, ...] = ("n1", "n2", "n3")
    policy: str = "lww"
    save_to: Path | None = None
    faults: bool = True
    keys: tuple[str, ...] = ("k0", "k1")

    def __init__(self) -> None:
        super().__init__()
        self.catalogue = load_catalogue()
        self.settle = settle_ms(DEFAULT_TIMING, len(self.nodes), self.catalogue)
        self._context = core_context(self.core)
        self._context.__enter__()
        self.cluster = SimCluster(self.nodes, policy=self.policy)
        self.cluster.start()
        self.steps: list[dict[str, Any]] = []
        self.judge_now = False

    def _do(self, step: dict[str, Any]) -> None:
        self.steps.append(step)
        apply_step(self.cluster, step, self.settle)

    @rule(data=st.data())
    def client(self, data: st.DataObject) -> None:
        self._do(data.draw(workload_steps(self.nodes, self.keys), label="client step"))

    @precondition(lambda self: self.faults)
    @rule(data=st.data())
    def fault(self, data: st.DataObject) -> None:
        self._do(data.draw(fault_steps(self.nodes), label="fault step"))

    @rule()
    def settle_now(self) -> None:
        self._do({"op": "settle"})
        self.judge_now = True

    @invariant()
    def requirements_hold(self) -> None:
        if not self.judge_now:
            return
        self.judge_now = False
        failed = failures(run_checks(self.cluster.entries(), self.catalogue))
        if failed:
            if self.save_to is not None:
                schedule = Schedule(
                    nodes=list(self.nodes),
                    steps=list(self.steps),
                    core=self.core,
                    policy=self.policy,
                    failure={
                        "requirements": [v.id for v in failed],
                        "evidence": failed[0].evidence,
                    },
                )
                save_schedule(self.save_to, schedule)
            raise AssertionError("; ".join(f"{v.id}: {v.evidence}" for v in failed))

    def teardown(self) -> None:
        self._context.__exit__(None, None, None)


@contextlib.contextmanager
def quiet_core() -> Iterator[None]:
    """The reference core unchanged, as a named core (``harness.properties:quiet_core``)."""
    yield
