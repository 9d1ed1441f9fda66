"""One vocabulary of operations: every workload and fault step as a frozen value.

Scenario files compile to these (:mod:`harness.workloads.planner`), Hypothesis generates
them (:mod:`harness.workloads.strategies`, for :mod:`harness.run.explore` and the property
tests), replay files hold them and the history records each one as it starts (a ``step``
entry). One interpreter runs them:
each operation's own ``run`` against an :class:`~harness.workloads.interpreter.Execution`, which
reaches the cluster through the one cluster interface (:mod:`harness.drivers.interface`), whether
the cluster is real processes, Docker containers or the simulator.

The JSON form of an operation is ``{"op": kind, <field>: <value>, ...}``; tuples become
lists. ``specs/operations.schema.json`` is generated from these classes
(``python -m gossipcert.harness.workloads.operations``), so a new kind of step is one class here.

Operations name nodes and links but never durations of the implementation's own timing:
waits for an outcome (:class:`AwaitMembers` and friends) are bounded by the bound of the
requirement they name, derived from the timing the run is judged by.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar

from gossipcert.harness.drivers.interface import NO_LATENCY

if TYPE_CHECKING:
    from gossipcert.harness.workloads.interpreter import Execution

__all__ = ["KINDS", "Op", "OperationError", "from_json", "load_ops", "schema", "to_json"]

Link = tuple[str, str]

KINDS: dict[str, type[Op]] = {}


class OperationError(ValueError):
    """An operation in JSON form is malformed: unknown kind, missing or mistyped field."""


@dataclass(frozen=True)
class Op:
    """One step. Subclasses set ``kind`` and implement ``run``; ``needs`` names the
    capability without which the step is skipped (so one sequence runs against any
    implementation and exercises what it claims)."""

    kind: ClassVar[str] = ""
    needs: ClassVar[str | None] = None
    summary: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            KINDS[cls.kind] = cls

    def run(self, x: Execution) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        args = ", ".join(f"{k}={_short(v)}" for k, v in self.to_json().items() if k != "op")
        return f"{self.kind}({args})"

    def to_json(self) -> dict[str, Any]:
        return to_json(self)

    def node_names(self) -> set[str]:
        """Every node this step names (for checking a replay file against its nodes)."""
        out: set[str] = set()
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("node", "seed") and isinstance(value, str) and value:
                out.add(value)
            elif f.name in ("nodes", "any_of"):
                out |= set(value)
            elif f.name in ("groups", "links"):
                out |= {n for group in value for n in group}
            elif f.name == "ops":
                for op in value:
                    out |= op.node_names()
        return out


def _short(value: Any) -> str:
    text = json.dumps(value, separators=(",", ":"))
    return text if len(text) <= 60 else text[:57] + "..."


# ---- process faults and membership ---------------------------------------------------


@dataclass(frozen=True)
class Kill(Op):
    kind = "kill"
    summary = "SIGKILL a node (docker kill); it stays down until start or restart"
    node: str

    def run(self, x: Execution) -> None:
        x.driver.kill(self.node)
        x.progress(f"killed {self.node} with SIGKILL")


@dataclass(frozen=True)
class Start(Op):
    kind = "start"
    summary = "start a node that is down again as itself (same id and data); it joins the live"
    node: str

    def run(self, x: Execution) -> None:
        x.driver.restart(self.node)
        x.progress(f"started {self.node} again with the same identity")


@dataclass(frozen=True)
class Restart(Op):
    kind = "restart"
    summary = "SIGKILL a node if it runs and start it again as itself; it joins the live"
    node: str

    def run(self, x: Execution) -> None:
        x.driver.restart(self.node)
        x.progress(f"restarted {self.node} with the same identity")


@dataclass(frozen=True)
class Pause(Op):
    kind = "pause"
    summary = "freeze a node (SIGSTOP, docker pause): it answers nothing until resume"
    node: str

    def run(self, x: Execution) -> None:
        x.driver.pause(self.node)
        x.progress(f"paused {self.node}")


@dataclass(frozen=True)
class Resume(Op):
    kind = "resume"
    summary = "continue a paused node"
    node: str

    def run(self, x: Execution) -> None:
        x.driver.resume(self.node)
        x.progress(f"resumed {self.node}")


@dataclass(frozen=True)
class Leave(Op):
    kind = "leave"
    summary = "ask a node to leave gracefully (POST /v1/leave); it is gone afterwards"
    node: str

    def run(self, x: Execution) -> None:
        x.driver.leave(self.node)
        x.progress(f"{self.node} left gracefully")


@dataclass(frozen=True)
class Join(Op):
    kind = "join"
    summary = "ask a running node to join through every other live node (POST /v1/join)"
    node: str

    def run(self, x: Execution) -> None:
        x.driver.join(self.node)


# ---- network faults --------------------------------------------------------------------


@dataclass(frozen=True)
class Partition(Op):
    kind = "partition"
    summary = "cut every link between the groups, both ways (nodes in no group keep theirs)"
    groups: tuple[tuple[str, ...], ...]
    plane: str = "auto"
    shape: str = ""
    links: tuple[Link, ...] = ()  # the links to cut, when not every pair between groups

    def cut_links(self) -> list[Link]:
        if self.links:
            return list(self.links)
        return sorted((a, b) for g1 in self.groups for g2 in self.groups if g1 is not g2
                      for a in g1 for b in g2)

    def run(self, x: Execution) -> None:
        links = self.cut_links()
        if not links:
            x.progress(f"{self.shape or 'partition'}: nothing to cut")
            return
        x.driver.cut(links, plane=self.plane, groups=[list(g) for g in self.groups],
                     shape=self.shape or None)
        text = " | ".join(",".join(g) for g in self.groups)
        x.progress(f"{self.shape or 'partition'} ({x.driver.plane_for(self.plane)} plane): "
                   f"{text}")


@dataclass(frozen=True)
class Cut(Op):
    kind = "cut"
    summary = "cut exactly these directed links (one-way cuts, rings)"
    links: tuple[Link, ...]
    plane: str = "auto"
    shape: str = ""

    def run(self, x: Execution) -> None:
        if not self.links:
            return
        x.driver.cut(list(self.links), plane=self.plane, shape=self.shape or None)
        x.progress(f"{self.shape or 'cut'} ({x.driver.plane_for(self.plane)} plane): "
                   f"{len(self.links)} directed links")


@dataclass(frozen=True)
class Heal(Op):
    kind = "heal"
    summary = "restore every link: cuts, latency and loss, on every plane"

    def run(self, x: Execution) -> None:
        x.driver.heal()
        x.progress("healed every link")


@dataclass(frozen=True)
class Latency(Op):
    kind = "latency"
    summary = "delay every byte on these directed links (link plane only; none -> skipped)"
    links: tuple[Link, ...]
    latency_ms: int
    jitter_ms: int = 0

    def run(self, x: Execution) -> None:
        if not x.driver.has_link_plane:
            # Nothing on this kernel delays packets (no netem) without per-link proxies.
            x.skipped["latency"] = NO_LATENCY
            x.progress(f"latency skipped: {NO_LATENCY}")
            return
        x.driver.latency(list(self.links), self.latency_ms, self.jitter_ms)
        x.progress(f"latency {self.latency_ms} ms (jitter {self.jitter_ms}) on "
                   f"{len(self.links)} links")


@dataclass(frozen=True)
class Loss(Op):
    kind = "loss"
    summary = "drop packets on these directed links at random"
    links: tuple[Link, ...]
    probability: float

    def run(self, x: Execution) -> None:
        x.driver.loss(list(self.links), self.probability)
        x.progress(f"packet loss {self.probability:.0%} on {len(self.links)} links")


# ---- workload ------------------------------------------------------------------------


@dataclass(frozen=True)
class Put(Op):
    kind = "put"
    needs = "kv"
    summary = "write a key on a node (with_context: the context of this node's last get)"
    node: str
    key: str
    value: Any
    with_context: bool = False

    def run(self, x: Execution) -> None:
        args: dict[str, Any] = {"key": self.key, "value": self.value}
        if self.with_context:
            args["context"] = x.contexts.get((self.node, self.key))
        x.driver.call(self.node, "put", args)


@dataclass(frozen=True)
class Get(Op):
    kind = "get"
    needs = "kv"
    summary = "read one key on a node; its context is kept for a later put with_context"
    node: str
    key: str

    def run(self, x: Execution) -> None:
        reply = x.driver.call(self.node, "get", {"key": self.key})
        if reply.ok and isinstance(reply.body, dict):
            x.contexts[(self.node, self.key)] = reply.body.get("context")


@dataclass(frozen=True)
class Delete(Op):
    kind = "delete"
    needs = "kv"
    summary = "delete a key on a node"
    node: str
    key: str

    def run(self, x: Execution) -> None:
        x.driver.call(self.node, "delete", {"key": self.key})


@dataclass(frozen=True)
class Crdt(Op):
    kind = "crdt"
    needs = "crdt"
    summary = "one CRDT operation on a node (g-counter, pn-counter, or-set, lww-register)"
    node: str
    name: str
    type: str
    operation: str  # increment, decrement, add, remove, set
    value: Any = None

    @property
    def crdt_type(self) -> str:
        """The CRDT type the step needs claimed (see ``Execution.applies``)."""
        return self.type

    def run(self, x: Execution) -> None:
        x.crdt_types[self.name] = self.type
        x.driver.call(self.node, "crdt", {"name": self.name, "type": self.type,
                                          "op": self.operation, "value": self.value})


@dataclass(frozen=True)
class CrdtRead(Op):
    kind = "crdt-read"
    needs = "crdt"
    summary = "read one CRDT's value on a node"
    node: str
    name: str

    def run(self, x: Execution) -> None:
        x.driver.call(self.node, "crdt_read", {"name": self.name})


@dataclass(frozen=True)
class Broadcast(Op):
    kind = "broadcast"
    needs = "broadcast"
    summary = "disseminate a message from a node (its id unique in the run)"
    node: str
    id: str
    payload: Any = None

    def run(self, x: Execution) -> None:
        payload = self.payload if self.payload is not None else {"hello": self.node}
        x.driver.call(self.node, "broadcast", {"id": x.broadcast_id(self.id),
                                               "payload": payload})
        x.sent_broadcasts.append(self.id)


@dataclass(frozen=True)
class Concurrent(Op):
    kind = "concurrent"
    summary = "client calls released together on threads: a real race"
    ops: tuple[Op, ...]

    def run(self, x: Execution) -> None:
        runnable = [op for op in self.ops if x.applies(op)]
        x.driver.together([functools.partial(op.run, x) for op in runnable])


# ---- time, observation and phases ----------------------------------------------------


@dataclass(frozen=True)
class Wait(Op):
    kind = "wait"
    summary = ("let time pass; with observe, read member views each second and kv digests "
               "twice a second meanwhile (evidence of what each node held)")
    ms: int
    observe: bool = True

    def run(self, x: Execution) -> None:
        x.hold(self.ms / 1000.0, observe=self.observe)


@dataclass(frozen=True)
class WaitUntil(Op):
    kind = "wait-until"
    summary = "wait until ms after the sequence began (a scenario step's `at`)"
    ms: int

    def run(self, x: Execution) -> None:
        x.driver.sleep(max(0.0, x.started + self.ms / 1000.0 - x.driver.clock()))


@dataclass(frozen=True)
class ReadRound(Op):
    kind = "read"
    summary = ("read every live node: members, kv, broadcasts, metrics, crdt (every CRDT "
               "used so far), traffic (the planes' counters) or events (poll them now)")
    what: str

    def run(self, x: Execution) -> None:
        x.read_round(self.what)


@dataclass(frozen=True)
class Phase(Op):
    kind = "phase"
    summary = "mark the start or end of a window the checkers judge (quiet, writes, ...)"
    name: str
    edge: str
    args: Mapping[str, Any] = field(default_factory=dict)
    when: str = ""  # a capability without which the window is not marked

    def run(self, x: Execution) -> None:
        args = {"edge": self.edge, **self.args}
        skipped = x.skipped.get(self.name)
        if skipped is not None:
            args = {"edge": self.edge, "skipped": skipped}
            if self.edge == "end":
                del x.skipped[self.name]
        x.driver.history.append("phase", self.name, args=args)


@dataclass(frozen=True)
class Note(Op):
    kind = "note"
    summary = "a progress line, nothing else"
    text: str

    def run(self, x: Execution) -> None:
        x.progress(self.text)


# ---- waits for an outcome ------------------------------------------------------------


@dataclass(frozen=True)
class AwaitMembers(Op):
    kind = "await-members"
    summary = ("read member views until every live node sees each of nodes (empty: every "
               "live node) in one of statuses; bounded by the requirement's bound")
    needs = "membership"
    nodes: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ("alive",)
    requirement: str = "MEM-JOIN"

    def run(self, x: Execution) -> None:
        expected = list(self.nodes) or x.driver.live_nodes()
        took = x.await_(lambda: x.all_see(expected, self.statuses), self.requirement, 0.1)
        what = ",".join(self.nodes) if self.nodes else f"all {len(expected)}"
        states = "/".join(self.statuses)
        x.progress(f"every member sees {what} {states} after {took:.1f} s" if took is not None
                   else f"not every member sees {what} {states}")


@dataclass(frozen=True)
class AwaitConvergence(Op):
    kind = "await-convergence"
    summary = "read until every live node sees every live node alive and kv digests agree"
    requirement: str = "PARTITION-HEAL"
    label: str = "converge"

    def run(self, x: Execution) -> None:
        x.converge(self.label, self.requirement)


@dataclass(frozen=True)
class AwaitDigests(Op):
    kind = "await-digests"
    needs = "kv"
    summary = "read kv until every live node reports the same digest"
    requirement: str = "KV-CONVERGENCE"
    label: str = "kv"

    def run(self, x: Execution) -> None:
        took = x.await_(x.digests_equal, self.requirement, 0.1)
        x.progress(f"{self.label}: " + (f"digests equal after {took:.1f} s" if took is not None
                                        else "digests still differ"))


@dataclass(frozen=True)
class AwaitDelivery(Op):
    kind = "await-delivery"
    needs = "broadcast"
    summary = ("read broadcasts until every live node has the message, or (any_of) until "
               "one of those nodes has it, reading without pause")
    id: str
    any_of: tuple[str, ...] = ()
    requirement: str = "BCAST-DELIVERY"

    def run(self, x: Execution) -> None:
        if self.any_of:
            took = x.await_(lambda: any(x.has_broadcast(n, self.id) for n in self.any_of),
                            self.requirement, 0.0)
            x.progress(f"broadcast {self.id}: " + (f"first hop after {took:.2f} s"
                                                    if took is not None else "no member got it"))
            return

        def delivered() -> bool:
            ok = True
            for node_id in x.driver.live_nodes():
                ok = x.has_broadcast(node_id, self.id) and ok
            return ok

        took = x.await_(delivered, self.requirement, 0.2)
        x.progress(f"broadcast {self.id}: " + (f"delivered everywhere in {took:.1f} s"
                                                if took is not None
                                                else "not delivered everywhere"))


@dataclass(frozen=True)
class AwaitCrdt(Op):
    kind = "await-crdt"
    needs = "crdt"
    summary = "read every CRDT used so far on every live node until the values agree"
    requirement: str = "KV-CONVERGENCE"

    def run(self, x: Execution) -> None:
        took = x.await_(x.crdts_agree, self.requirement, 0.3)
        x.progress(f"crdt reads: {len(x.crdt_types)} CRDTs "
                   + (f"agree after {took:.1f} s" if took is not None else "still disagree"))


@dataclass(frozen=True)
class AwaitCrdtHas(Op):
    kind = "await-crdt-has"
    needs = "crdt"
    summary = "read one or-set on one node until it holds the element"
    node: str
    name: str
    element: str
    requirement: str = "KV-CONVERGENCE"

    @property
    def crdt_type(self) -> str:
        return "or-set"

    def run(self, x: Execution) -> None:
        def seen() -> bool:
            reply = x.driver.call(self.node, "crdt_read", {"name": self.name})
            body = reply.body if reply.ok and isinstance(reply.body, dict) else {}
            value = body.get("value")
            return isinstance(value, list) and self.element in value

        if x.await_(seen, self.requirement, 0.1) is None:
            x.progress(f"{self.node} never read {self.element} in {self.name}")


# ---- a node that is not a member -----------------------------------------------------


@dataclass(frozen=True)
class Intruder(Op):
    kind = "intruder"
    needs = "encryption"
    summary = ("SEC-WRONG-KEY: an extra node with a gossip key of its own, seeded with a "
               "member, tries a write and a broadcast while members are read for ms; then "
               "it is stopped")
    node: str
    seed: str
    ms: int
    broadcast_id: str

    def run(self, x: Execution) -> None:
        if not x.driver.gossip_key_set:
            x.progress("wrong-key node: skipped (the run has no gossip key: the scenario "
                       "needs encryption, the manifest capability encryption and key_args)")
            return
        live = x.driver.live_nodes()
        seed = self.seed if self.seed in live else (live[0] if live else None)
        if seed is None:
            x.progress("wrong-key node: skipped (no member is up to seed it)")
            return
        x.driver.start_intruder(self.node, seed)
        x.driver.history.append("phase", "wrong-key",
                                args={"edge": "start", "node": self.node, "seed": seed})
        x.progress(f"wrong-key node {self.node} started, seeded with {seed}; holding "
                   f"{self.ms / 1000:.1f} s")
        try:
            if "kv" in x.capabilities:
                x.driver.call(self.node, "put", {"key": f"key-wrong-key-{self.node}",
                                                 "value": f"{self.node}/intruder"})
            if "broadcast" in x.capabilities:
                x.driver.call(self.node, "broadcast", {"id": x.broadcast_id(self.broadcast_id),
                                                       "payload": {"hello": self.node}})
            x.hold(self.ms / 1000)
            x.read_round("broadcasts")
            x.read_round("metrics")
        finally:
            x.driver.stop_intruder(self.node)
            x.driver.history.append("phase", "wrong-key", args={"edge": "end", "node": self.node})
        x.progress(f"wrong-key node {self.node} stopped")


# ---- the JSON form -------------------------------------------------------------------


def to_json(op: Op) -> dict[str, Any]:
    out: dict[str, Any] = {"op": op.kind}
    for f in fields(op):
        value = getattr(op, f.name)
        if f.default is not dataclasses.MISSING and value == f.default:
            continue
        if f.default_factory is not dataclasses.MISSING and value == f.default_factory():
            continue
        out[f.name] = _plain(value)
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, Op):
        return to_json(value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _hints(cls: type[Op]) -> dict[str, Any]:
    return typing.get_type_hints(cls, vars(sys.modules[__name__]))


def from_json(data: Any, where: str = "operation") -> Op:
    """The operation a JSON object describes; OperationError names what is wrong."""
    if not isinstance(data, Mapping):
        raise OperationError(f"{where}: not an object")
    kind = data.get("op")
    cls = KINDS.get(str(kind))
    if cls is None:
        raise OperationError(f"{where}: unknown op {kind!r} (known: {', '.join(sorted(KINDS))})")
    hints = _hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = set(data) - names - {"op"}
    if unknown:
        raise OperationError(f"{where} ({kind}): unknown field(s) {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise OperationError(f"{where} ({kind}): missing field {f.name!r}")
            continue
        values[f.name] = _convert(data[f.name], hints[f.name], f"{where} ({kind}).{f.name}")
    return cls(**values)


def _convert(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if hint is Any:
        return value
    if hint is str or hint is int or hint is bool:
        ok = isinstance(value, hint) and not (hint is int and isinstance(value, bool))
        if not ok:
            raise OperationError(f"{where}: expected {hint.__name__}, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise OperationError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, list | tuple):
            raise OperationError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise OperationError(f"{where}: expected {len(args)} items, got {value!r}")
        return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args,
                                                                                      strict=True)))
    if origin in (Mapping, dict) or hint is Mapping:
        if not isinstance(value, Mapping):
            raise OperationError(f"{where}: expected an object, got {value!r}")
        return dict(value)
    if hint is Op:
        return from_json(value, where)
    if origin in (types.UnionType, typing.Union):
        raise OperationError(f"{where}: unsupported field type {hint}")
    raise OperationError(f"{where}: unsupported field type {hint}")


def load_ops(items: Sequence[Any], where: str = "ops") -> list[Op]:
    return [from_json(item, f"{where}[{i}]") for i, item in enumerate(items)]


# ---- the schema ----------------------------------------------------------------------


def _schema_of(hint: Any) -> dict[str, Any]:
    origin = typing.get_origin(hint)
    if hint is Any:
        return {}
    if hint is str:
        return {"type": "string"}
    if hint is int:
        return {"type": "integer"}
    if hint is bool:
        return {"type": "boolean"}
    if hint is float:
        return {"type": "number"}
    if hint is Op:
        return {"$ref": "#"}
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": _schema_of(args[0])}
        return {"type": "array", "prefixItems": [_schema_of(a) for a in args],
                "minItems": len(args), "maxItems": len(args)}
    if origin in (Mapping, dict):
        return {"type": "object"}
    raise TypeError(f"no schema for {hint}")


def schema() -> dict[str, Any]:
    """The JSON Schema of one operation (``specs/operations.schema.json``)."""
    variants = []
    for kind, cls in sorted(KINDS.items()):
        hints = _hints(cls)
        props: dict[str, Any] = {"op": {"const": kind}}
        required = ["op"]
        for f in fields(cls):
            props[f.name] = _schema_of(hints[f.name])
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                required.append(f.name)
        variant: dict[str, Any] = {"title": kind, "description": cls.summary, "type": "object",
                                   "properties": props, "required": required,
                                   "additionalProperties": False}
        if cls.needs:
            variant["x-needs-capability"] = cls.needs
        variants.append(variant)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://gossipcert.dev/specs/operations.schema.json",
        "title": "gossipcert operation",
        "description": ("One workload or fault step, as scenario files compile to, Hypothesis "
                        "generates, replay files hold and the history records (entry type "
                        "step). Generated from harness/workloads/operations.py."),
        "oneOf": variants,
    }


if __name__ == "__main__":
    print(json.dumps(schema(), indent=1))
