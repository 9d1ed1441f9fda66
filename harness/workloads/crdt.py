"""CRDTs: every replica's final value of each CRDT agrees and is one the operations
allow (g-counter and pn-counter sums, or-set adds and removes, lww-register's last set),
and every read along the way is one that could have been served by then.

What a value may be is the models' (:mod:`harness.judging.models`); the reads are the
history's ``crdt_read`` operations.

It also owns the CRDT operations and the rule that draws them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from gossipcert.harness.judging.checker import (
    Checker,
    JudgingContext,
    capability_checker,
    count_verdict,
    make_verdict,
    write_clock_violations,
)
from gossipcert.harness.judging.clock import run_time
from gossipcert.harness.judging.index import INF, HistoryIndex, PairedOp
from gossipcert.harness.judging.models import (
    CounterOp,
    SetOp,
    SetRead,
    Write,
    canon,
    counter_range,
    lww_model,
    or_set_model,
)
from gossipcert.harness.judging.verdict import CRDT_TYPES, Requirement, Verdict
from gossipcert.harness.workloads.operations import Op
from gossipcert.harness.workloads.strategies import Choice, GeneratorRules, SequenceBuilder, Space
from hypothesis import strategies as st

if TYPE_CHECKING:
    from gossipcert.harness.workloads.interpreter import Execution


__all__ = [
    "OPERATIONS",
    "CHECKERS",
    "GENERATOR",
    "Crdt",
    "CrdtRead",
    "check_crdt_g_counter",
    "check_crdt_lww_register",
    "check_crdt_or_set",
    "check_crdt_pn_counter",
]


# The name a drawn sequence gives the one CRDT of each type it uses.
_CRDT_NAMES = {"g-counter": "hits", "pn-counter": "stock", "or-set": "tags",
               "lww-register": "owner"}


# ---- operations -----------------------------------------------------------------------


@dataclass(frozen=True)
class Crdt(Op):
    kind = "crdt"
    needs = "crdt"
    client_call = True
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

    def with_namespace(self, prefix: str) -> Op:
        return replace(self, name=prefix + self.name)

    def run(self, x: Execution) -> None:
        x.crdt_types[self.name] = self.type
        x.driver.call(self.node, "crdt", {"name": self.name, "type": self.type,
                                          "op": self.operation, "value": self.value})


@dataclass(frozen=True)
class CrdtRead(Op):
    kind = "crdt-read"
    needs = "crdt"
    client_call = True
    summary = "read one CRDT's value on a node"
    node: str
    name: str

    def with_namespace(self, prefix: str) -> Op:
        return replace(self, name=prefix + self.name)

    def run(self, x: Execution) -> None:
        x.driver.call(self.node, "crdt_read", {"name": self.name})


# ---- generator rules ------------------------------------------------------------------


def _choices(
    space: Space, node: st.SearchStrategy[int], key: st.SearchStrategy[int]
) -> list[st.SearchStrategy[Choice]]:
    if "crdt" not in space.capabilities:
        return []
    return [st.tuples(st.just("crdt"), st.integers(0, len(CRDT_TYPES) - 1), node,
                      st.integers(0, 3))]


def _crdt(b: SequenceBuilder, kind: int, node: int, variant: int) -> None:
    pool = b.writable()
    if not pool:
        return
    target = b.pick(pool, node)
    crdt = CRDT_TYPES[kind % len(CRDT_TYPES)]
    name = f"{b.ns}{_CRDT_NAMES[crdt]}"
    if crdt == "g-counter":
        op = Crdt(target, name, crdt, "increment", variant % 2 + 1)
    elif crdt == "pn-counter":
        op = Crdt(target, name, crdt, "decrement" if variant % 2 else "increment", 1)
    elif crdt == "or-set" and variant >= 2 and b.set_adds:
        # A remove of the element added last, where it was added when that node is up:
        # a remove that certainly observed the add, so the element must go.
        element, adder = b.set_adds.pop()
        op = Crdt(adder if adder in pool else target, name, crdt, "remove", element)
    elif crdt == "or-set":
        element = f"e{variant % 2}"
        b.set_adds.append((element, target))
        op = Crdt(target, name, crdt, "add", element)
    else:
        op = Crdt(target, name, crdt, "set", b.value(target))
    b.out.append(op)
    b.wrote(op.node, kv=False)
    b.crdts_used = True


GENERATOR = GeneratorRules(_choices, {"crdt": _crdt})


# ---- checkers --------------------------------------------------------------------------


# --------------------------------------------------------------------------- CRDTs


def _crdt_ops(index: HistoryIndex, crdt_type: str) -> dict[str, list[PairedOp]]:
    out: dict[str, list[PairedOp]] = defaultdict(list)
    for op in index.ops.get("crdt", []):
        name = op.args.get("name")
        if name is not None and op.args.get("type") == crdt_type:
            out[str(name)].append(op)
    return dict(out)


def _crdt_finals(
    index: HistoryIndex, names: Sequence[str], ops: Mapping[str, list[PairedOp]]
) -> tuple[dict[str, dict[str, Any]], float]:
    """Per CRDT name, each survivor's last read value after the last operation on it."""
    stop = max(
        (o.completed if o.completed < INF else o.invoked for v in ops.values() for o in v),
        default=index.begin_ms,
    )
    cut = index.cut_open_at(stop)
    if cut is not None and cut.end < INF:
        stop = cut.end
    survivors = index.survivors(stop)
    finals: dict[str, dict[str, Any]] = {name: {} for name in names}
    for read in index.ops.get("crdt_read", []):
        name = read.args.get("name")
        if (
            read.outcome == "ok"
            and name in finals
            and read.node in survivors
            and read.invoked >= stop
            and isinstance(read.result, Mapping)
        ):
            finals[str(name)][str(read.node)] = read.result.get("value")
    return finals, stop


def _crdt_check(
    judging: JudgingContext,
    requirement: Requirement,
    bound: float,
    crdt_type: str,
    judge: Callable[[list[PairedOp], Any], list[str]],
    normal: Callable[[Any], str] = canon,
    every_read: Callable[[list[PairedOp], list[PairedOp], float], list[str]] | None = None,
) -> Verdict:
    """Judge each CRDT's final values (agreement and ``judge``) and, with
    ``every_read``, every read of it on every node along the way."""
    index, params = judging.index, judging.params
    ops = _crdt_ops(index, crdt_type)
    if not ops:
        why = f"no {crdt_type} operation in the history"
        return make_verdict(requirement, "untested", None, bound, why)
    # A value judged against no acknowledged update proves nothing: an empty counter or
    # set agrees with itself whatever the node does with updates.
    ops = {name: made for name, made in ops.items() if any(o.outcome == "ok" for o in made)}
    if not ops:
        attempted = sum(1 for o in index.ops.get("crdt", []) if o.args.get("type") == crdt_type)
        why = f"none of the {attempted} {crdt_type} operation(s) was acknowledged"
        return make_verdict(requirement, "untested", None, bound, why)
    finals, stop = _crdt_finals(index, sorted(ops), ops)
    settle = (
        params["dissemination_ms"]
        + math.ceil(math.log2(max(2, len(index.nodes)))) * params["push_pull_interval_ms"]
    )
    bad: list[dict[str, Any]] = []
    judged = 0
    pending: list[str] = []
    for name in sorted(ops):
        values = finals[name]
        if not values:
            continue
        reasons: list[str] = []
        if len({normal(v) for v in values.values()}) > 1:
            if index.end_ms - stop < settle:
                pending.append(name)
                continue
            reasons.append("members disagree")
        judged += 1
        for node, value in sorted(values.items()):
            problems = judge(ops[name], value)
            if problems:
                reasons.append(f"{node}: {'; '.join(problems)}")
                break
        if every_read is not None:
            reasons += every_read(ops[name], _crdt_reads(index, name), index.begin_ms)
        if reasons:
            bad.append({"name": name, "reasons": reasons, "values": values})
    if judged == 0:
        why = f"no {crdt_type} was read by a surviving member after its last operation"
        if pending:
            why += f" long enough to converge ({', '.join(pending)})"
        return make_verdict(requirement, "untested", None, bound, why)
    return count_verdict(
        requirement,
        bound,
        bad,
        judged,
        f"{crdt_type}s off their sequential specification",
        f"all {judged} {crdt_type}(s) agree and match the sequential specification",
    )


def _crdt_reads(index: HistoryIndex, name: str) -> list[PairedOp]:
    """Every completed read of one CRDT, on any member, in invocation order."""
    return [
        r
        for r in index.ops.get("crdt_read", [])
        if r.outcome == "ok" and r.node is not None and r.args.get("name") == name
        and isinstance(r.result, Mapping)
    ]


def _amount(op: PairedOp, sign: float) -> float:
    value = op.args.get("value", 1)
    return sign * (float(value) if isinstance(value, int | float) else 1.0)


def _counter_judge(allow_decrement: bool) -> Callable[[list[PairedOp], Any], list[str]]:
    def judge(ops: list[PairedOp], value: Any) -> list[str]:
        steps = []
        for op in ops:
            kind = op.args.get("op")
            if kind == "increment":
                steps.append(CounterOp(_amount(op, 1.0), op.outcome))
            elif kind == "decrement" and allow_decrement:
                steps.append(CounterOp(_amount(op, -1.0), op.outcome))
        span = counter_range(steps)
        if span.admits(value):
            return []
        return [f"value {value!r} outside [{span.low:g}, {span.high:g}]"]

    return judge


def _counter_reads_judge(
    allow_decrement: bool,
) -> Callable[[list[PairedOp], list[PairedOp], float], list[str]]:
    """Every read of a counter on a node, against what could have happened by then: at
    most every operation begun before the read completed, in its own direction; at least
    the node's own completed operations from before the read began (a node applies its
    own operations before acknowledging them) pulling the other way; and a g-counter
    read never below an earlier completed read of the same node (merges only grow)."""

    def judge(ops: list[PairedOp], reads: list[PairedOp], begin: float) -> list[str]:
        signed = []
        for op in ops:
            kind = op.args.get("op")
            if op.outcome == "fail" or op.node is None:
                continue
            if kind == "increment":
                signed.append((op, _amount(op, 1.0)))
            elif kind == "decrement" and allow_decrement:
                signed.append((op, _amount(op, -1.0)))
        floor: dict[str, tuple[float, float]] = {}  # node -> (completed, value) of a read
        for read in sorted(reads, key=lambda r: r.invoked):
            value = read.result.get("value") if isinstance(read.result, Mapping) else None
            if not isinstance(value, int | float) or isinstance(value, bool):
                return [f"{read.node}: read a non-number {value!r}"]
            node = str(read.node)
            high = low = 0.0
            for op, amount in signed:
                could = op.invoked < read.completed
                own = op.node == node and op.outcome == "ok" and op.completed < read.invoked
                if amount >= 0:
                    high += amount if could else 0.0
                    low += amount if own else 0.0
                else:
                    low += amount if could else 0.0
                    high += amount if own else 0.0
            if not low <= value <= high:
                return [
                    f"{node}: a read at {run_time(read.completed, begin)} returned {value:g}, "
                    f"outside "
                    f"[{low:g}, {high:g}] (what could have happened by then)"
                ]
            if not allow_decrement:
                before = floor.get(node)
                if before is not None and before[0] < read.invoked and value < before[1]:
                    return [
                        f"{node}: a read at {run_time(read.completed, begin)} returned "
                        f"{value:g}, below "
                        f"its earlier read of {before[1]:g} (a grow-only counter shrank)"
                    ]
                if before is None or value >= before[1]:
                    floor[node] = (read.completed, float(value))
        return []

    return judge


# What exercises CRDTs: their operations and reads (see capability_checker).
checker = capability_checker(calls=("crdt", "crdt_read"), reads=("crdt_read",))


@checker
def check_crdt_g_counter(
    judging: JudgingContext, requirement: Requirement, bound: float
) -> Verdict:
    """CRDT-G-COUNTER: the converged value is the sum of the increments (those of unknown
    outcome may or may not count)."""
    return _crdt_check(
        judging, requirement, bound, "g-counter", _counter_judge(False),
        every_read=_counter_reads_judge(False),
    )


@checker
def check_crdt_pn_counter(
    judging: JudgingContext, requirement: Requirement, bound: float
) -> Verdict:
    """CRDT-PN-COUNTER: increments minus decrements, within the range unknown outcomes allow."""
    return _crdt_check(
        judging, requirement, bound, "pn-counter", _counter_judge(True),
        every_read=_counter_reads_judge(True),
    )


def _set_judge(index: HistoryIndex) -> Callable[[list[PairedOp], Any], list[str]]:
    def judge(ops: list[PairedOp], value: Any) -> list[str]:
        steps = [
            SetOp(
                op.args.get("value"), op.args.get("op") == "add", op.invoked, op.completed,
                op.outcome, op.node,
            )
            for op in ops
            if op.args.get("op") in ("add", "remove")
        ]
        if not isinstance(value, list):
            return [f"value {value!r} is not a list"]
        name = ops[0].args.get("name") if ops else None
        reads = [
            SetRead(str(r.node), r.invoked, r.completed,
                    frozenset(canon(v) for v in (r.result or {}).get("value") or []))
            for r in _crdt_reads(index, str(name))
            if isinstance((r.result or {}).get("value"), list)
        ]
        return or_set_model(steps, reads, _cut_off(index)).violations(value)

    return judge


def _cut_off(index: HistoryIndex) -> Callable[[SetOp, SetOp], bool]:
    """Whether a remove could not have observed an add: both ran inside one partition,
    on different sides of it, the add begun after it opened and the remove acknowledged
    before it healed (nothing of the add could cross to the remover's side meanwhile)."""

    def unseen(add: SetOp, remove: SetOp) -> bool:
        if add.node is None or remove.node is None or remove.outcome != "ok":
            return False
        return any(
            cut.group and cut.start <= add.invoked and remove.completed < cut.end
            and cut.group.get(add.node) is not None
            and cut.group.get(remove.node) is not None
            and cut.group[add.node] != cut.group[remove.node]
            for cut in index.cuts
        )

    return unseen


def _set_normal(value: Any) -> str:
    return canon(sorted(canon(v) for v in value)) if isinstance(value, list) else canon(value)


@checker
def check_crdt_or_set(judging: JudgingContext, requirement: Requirement, bound: float) -> Verdict:
    """CRDT-OR-SET: add-wins: an add no remove could have observed survives (also one
    concurrent with a remove on the other side of a partition); nothing never added
    appears."""
    index = judging.index
    return _crdt_check(judging, requirement, bound, "or-set", _set_judge(index), _set_normal)


def _register_judge(skew_ms: float) -> Callable[[list[PairedOp], Any], list[str]]:
    def judge(ops: list[PairedOp], value: Any) -> list[str]:
        writes = []
        for op in ops:
            if op.args.get("op") != "set" or op.node is None:
                continue
            stamp = op.result.get("timestamp") if isinstance(op.result, Mapping) else None
            writes.append(
                Write(
                    key="register",
                    node=op.node,
                    value=op.args.get("value"),
                    invoked=op.invoked,
                    completed=op.completed,
                    outcome=op.outcome,
                    timestamp=tuple(float(x) for x in stamp) if isinstance(stamp, list) else None,
                )
            )
        problems = [v["reasons"][0] for v in write_clock_violations(writes, skew_ms)]
        model = lww_model(writes)
        if not model.admits(None if value is None else [value]):
            problems.append(f"value {value!r} is not the last writer's ({model.rule})")
        return problems

    return judge


@checker
def check_crdt_lww_register(
    judging: JudgingContext, requirement: Requirement, bound: float
) -> Verdict:
    """CRDT-LWW-REGISTER: the converged value is the last set (greatest timestamp, or not
    superseded in real time)."""
    index = judging.index
    return _crdt_check(
        judging, requirement, bound, "lww-register", _register_judge(index.clock_skew_ms)
    )


# The operations this capability adds to the vocabulary.
OPERATIONS: tuple[type[Op], ...] = (Crdt, CrdtRead)


# The checkers of this capability's requirements, by the name the catalogue gives.
CHECKERS: dict[str, Checker] = {
    "check_crdt_g_counter": check_crdt_g_counter,
    "check_crdt_pn_counter": check_crdt_pn_counter,
    "check_crdt_or_set": check_crdt_or_set,
    "check_crdt_lww_register": check_crdt_lww_register,
}
