"""One vocabulary of operations: every workload and fault step as a frozen value.

Scenario files compile to these (:mod:`harness.workloads.planner`), Hypothesis generates
them (:mod:`harness.workloads.strategies`, for :mod:`harness.run.explore` and the property
tests), replay files hold them and the history records each one as it starts (a ``step``
entry). One interpreter runs them:
each operation's own ``run`` against an :class:`~harness.workloads.interpreter.Execution`, which
reaches the cluster through the one cluster interface (:mod:`harness.drivers.interface`), whether
the cluster is real processes, Docker containers or the simulator.

The JSON form of an operation is ``{"op": kind, <field>: <value>, ...}``; tuples become
lists. ``specs/operations.schema.json`` is generated from every subclass of :class:`Op`
(``python -m gossipcert.harness.workloads.operations``).

This module holds what every capability shares: the base class, the JSON form, and the
generic steps (waits, reads, phases, awaits of an outcome, concurrent calls). Each
capability's own client calls live with its checkers (:mod:`harness.workloads.kv` and
the others, gathered in :mod:`harness.workloads.capabilities`), and the faults with the
operation that heals each (:mod:`harness.workloads.faults`).

Operations name nodes and links but never durations of the implementation's own timing:
waits for an outcome (:class:`AwaitMembers` and friends) are bounded by the bound of the
requirement they name, derived from the timing the run is judged by.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from gossipcert.harness.workloads.interpreter import Execution

__all__ = ["KINDS", "Op", "OperationError", "from_json", "load_ops", "schema", "to_json"]

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
    # A client call goes to its ``node``, which must be up (see sequence_problems).
    client_call: ClassVar[bool] = False

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

    def with_namespace(self, prefix: str) -> Op:
        """This step with every key, CRDT name and broadcast id it names prefixed (a
        fresh namespace on a cluster that holds an earlier sequence's state)."""
        return self

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


# ---- composition ---------------------------------------------------------------------


@dataclass(frozen=True)
class Concurrent(Op):
    kind = "concurrent"
    summary = "client calls released together on threads: a real race"
    ops: tuple[Op, ...]

    def with_namespace(self, prefix: str) -> Op:
        return replace(self, ops=tuple(op.with_namespace(prefix) for op in self.ops))

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
    # Sent while a partition held: members cut off from the origin owe it only after the
    # healed sides have had time to repair (heal_repair_ms), so the wait allows for that.
    after_heal: bool = False

    def with_namespace(self, prefix: str) -> Op:
        return replace(self, id=prefix + self.id)

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

        extra_s = x.params["heal_repair_ms"] / 1000.0 if self.after_heal else 0.0
        took = x.await_(delivered, self.requirement, 0.2, extra_s=extra_s)
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

    def with_namespace(self, prefix: str) -> Op:
        return replace(self, name=prefix + self.name)

    def run(self, x: Execution) -> None:
        def seen() -> bool:
            reply = x.driver.call(self.node, "crdt_read", {"name": self.name})
            body = reply.body if reply.ok and isinstance(reply.body, dict) else {}
            value = body.get("value")
            return isinstance(value, list) and self.element in value

        if x.await_(seen, self.requirement, 0.1) is None:
            x.progress(f"{self.node} never read {self.element} in {self.name}")


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
    """Field types of ``cls``, each resolved in the module that defines it."""
    return typing.get_type_hints(cls)


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
    """The operations of a JSON list (every kind is known once
    :mod:`harness.workloads` is imported, which gathers the capabilities)."""
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
                        "step). Generated from the operation classes of "
                        "harness/workloads/."),
        "oneOf": variants,
    }


if __name__ == "__main__":
    # Run as a script this file is a second module: ask the package's own copy, which the
    # capability modules registered their operations with.
    from gossipcert.harness.workloads import operations

    print(json.dumps(operations.schema(), indent=1))
