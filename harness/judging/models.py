"""Model checkers: from the operations of a history, what the converged state may be.

Pure functions, linear (or ``n log n``) in the operations they get. Each model answers
two questions about a key or a CRDT: what the final state *must* contain and what it
*may* contain. Operations of unknown outcome (``info``: a timeout) may or may not have
happened (Jepsen's rule), so they widen what is allowed and never add obligations;
failed operations never happened.

The kv and CRDT checkers (:mod:`harness.workloads.kv`, :mod:`harness.workloads.crdt`)
feed these models from the history and compare every surviving member's final read against them.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "REALTIME_TOLERANCE_MS",
    "CounterOp",
    "CounterRange",
    "LwwOutcome",
    "MvOutcome",
    "SetOp",
    "SetRead",
    "SetOutcome",
    "Write",
    "canon",
    "counter_range",
    "lww_model",
    "lost_writes",
    "mv_model",
    "or_set_model",
    "quantiles",
    "resurrected_deletes",
    "timestamp_violations",
]

INF = math.inf

# Node clocks report whole milliseconds: a write that began at least this long after another
# completed is guaranteed a strictly greater wall component in its HLC timestamp.
REALTIME_TOLERANCE_MS = 1.0


def canon(value: Any) -> str:
    """A value's canonical JSON text: how values are compared and used as keys."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class Write:
    """One put or delete of a key, as the history recorded it.

    ``context`` is the causal context the client passed (mv), ``result_context`` the one
    the node returned; ``timestamp`` the ``[wall_ms, logical]`` the node reported (lww).
    ``completed`` is ``inf`` for an operation that never completed.
    """

    key: str
    node: str
    value: Any
    invoked: float
    completed: float
    outcome: str  # ok / info / fail
    timestamp: tuple[float, ...] | None = None
    deleted: bool = False
    context: Any = None
    result_context: Any = None
    call: int | None = None

    @property
    def happened(self) -> bool:
        return self.outcome == "ok"

    @property
    def maybe(self) -> bool:
        return self.outcome not in ("ok", "fail")

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "node": self.node,
            "value": None if self.deleted else self.value,
            "outcome": self.outcome,
        }
        if self.deleted:
            out["deleted"] = True
        if self.timestamp is not None:
            out["timestamp"] = list(self.timestamp)
        return out


# --------------------------------------------------------------------------- LWW


@dataclass(frozen=True)
class LwwOutcome:
    """What last-writer-wins allows for one key.

    ``allowed`` holds canonical values that may survive; ``absence_ok`` whether the key
    may be missing (no completed write, or a delete may win).
    """

    allowed: frozenset[str]
    absence_ok: bool
    rule: str
    winner: Write | None = None
    candidates: tuple[Write, ...] = ()
    maybe: tuple[Write, ...] = ()

    def explain(self, limit: int = 10) -> dict[str, Any]:
        out: dict[str, Any] = {"rule": self.rule}
        if self.winner is not None:
            out["winner"] = self.winner.describe()
        if self.candidates:
            out["candidates"] = [w.describe() for w in self.candidates[:limit]]
        if self.maybe:
            out["maybe"] = [w.describe() for w in self.maybe[:limit]]
        return out

    def admits(self, values: Sequence[Any] | None) -> bool:
        if values is None or len(values) == 0:
            return self.absence_ok
        return len(values) == 1 and canon(values[0]) in self.allowed


def _order(w: Write) -> tuple[tuple[float, ...], str]:
    assert w.timestamp is not None
    return (w.timestamp, w.node)


def lww_model(writes: Sequence[Write]) -> LwwOutcome:
    """Per key, the write with the greatest (timestamp, node id) wins.

    With timestamps on every completed write the winner is exact; ``info`` writes may
    also win (they may have happened with any timestamp). Without timestamps the only
    sound rule is real time: a write that began after another completed is later, so
    the survivors are the completed writes no other completed write followed.
    """
    ok = [w for w in writes if w.happened]
    maybe = tuple(w for w in writes if w.maybe)
    allowed = {canon(w.value) for w in maybe if not w.deleted}
    absence_ok = not ok or any(w.deleted for w in maybe)
    if ok and all(w.timestamp is not None for w in ok):
        winner = max(ok, key=_order)
        if winner.deleted:
            absence_ok = True
        else:
            allowed.add(canon(winner.value))
        return LwwOutcome(
            frozenset(allowed), absence_ok, "greatest (timestamp, node id)", winner, (), maybe
        )
    if not ok:
        return LwwOutcome(frozenset(allowed), True, "no completed write", None, (), maybe)
    latest_start = max(w.invoked for w in ok)
    candidates = tuple(w for w in ok if w.completed + REALTIME_TOLERANCE_MS >= latest_start)
    for w in candidates:
        if w.deleted:
            absence_ok = True
        else:
            allowed.add(canon(w.value))
    return LwwOutcome(
        frozenset(allowed),
        absence_ok,
        "not superseded in real time (no timestamps reported)",
        None,
        candidates,
        maybe,
    )


def _surely_before(a: Write, b: Write) -> bool:
    """Whether ``a`` is certainly ordered before ``b`` under LWW."""
    if a.timestamp is not None and b.timestamp is not None:
        return _order(a) < _order(b)
    return a.completed + REALTIME_TOLERANCE_MS < b.invoked


def lost_writes(
    writes: Sequence[Write], final: Sequence[Any] | None, policy: str = "lww"
) -> list[Write]:
    """Completed writes of one key that are neither in ``final`` nor superseded.

    Under mv a write is superseded by a write whose context covered it (see
    :func:`mv_model`). Under lww it is superseded by any write that may be ordered after
    it and either certainly followed it or is what the member finally holds (the value
    it holds, or a delete when it holds nothing): with timestamps, a greater (timestamp,
    node id); without, any write not certainly before it in real time, so writes that
    raced the winner lost the race, they were not lost. A write of unknown outcome
    supersedes only as what the member holds (it may take effect at any time after its
    invocation): one timed-out put does not excuse every lost write of its key, since
    had it superseded them its own value (or a later one) would be there. Whether the
    final value itself is legal is KV-LWW's question, not this one.
    """
    present = {canon(v) for v in final or []}
    ok = [w for w in writes if w.happened and not w.deleted]
    if policy == "mv":
        superseded = mv_model(writes).superseded
        return [w for w in ok if canon(w.value) not in present and canon(w.value) not in superseded]
    others = [w for w in writes if w.outcome != "fail"]
    if present:
        holders = [w for w in others if not w.deleted and canon(w.value) in present]
    else:
        holders = [w for w in others if w.deleted]
    # Linear: per class of competitor (stamped: ordered by timestamp; any: by real time)
    # only the extreme one matters.
    stamped = [w for w in others if w.timestamp is not None]
    best = max(stamped, key=_order) if stamped else None
    unstamped = [w for w in others if w.timestamp is None]

    def end(x: Write) -> float:
        return INF if x.maybe else x.completed  # unknown outcome: may take effect any time

    all_latest, all_holder_end = (
        max((x.invoked for x in others if x.happened), default=-INF),
        max((end(x) for x in holders), default=-INF),
    )
    un_latest, un_holder_end = (
        max((x.invoked for x in unstamped if x.happened), default=-INF),
        max((end(x) for x in holders if x.timestamp is None), default=-INF),
    )
    lost: list[Write] = []
    for w in ok:
        if canon(w.value) in present:
            continue
        if w.timestamp is not None:
            if best is not None and _order(best) > _order(w):
                continue  # a greater timestamp supersedes it
            latest, holder_end = un_latest, un_holder_end
        else:
            latest, holder_end = all_latest, all_holder_end
        if (
            latest > w.completed + REALTIME_TOLERANCE_MS  # a write certainly after it
            or holder_end + REALTIME_TOLERANCE_MS >= w.invoked  # the holder may follow it
        ):
            continue
        lost.append(w)
    return lost


def timestamp_violations(writes: Sequence[Write], skew_ms: float) -> list[Write]:
    """Completed writes whose reported timestamp lies outside ``[invoked - skew,
    completed + skew]``: the node stamped a time the harness did not see it write at.
    A hybrid logical clock's wall component is the node's clock (or a peer's, never far
    ahead of it), so within the skew of the hosts' clocks it falls inside the call."""
    return [
        w
        for w in writes
        if w.happened
        and w.timestamp
        and not (w.invoked - skew_ms <= w.timestamp[0] <= w.completed + skew_ms)
    ]


def resurrected_deletes(writes: Sequence[Write], final: Sequence[Any] | None) -> list[Write]:
    """Completed deletes of one key that a surviving value certainly preceded.

    A delete stays deleted unless a write that may be later re-creates the key. A
    surviving value is a resurrection when every write of that value is certainly before
    some completed delete.
    """
    deletes = [w for w in writes if w.deleted and w.happened]
    if not deletes or not final:
        return []
    by_value: dict[str, list[Write]] = defaultdict(list)
    for w in writes:
        if not w.deleted and w.outcome != "fail":
            by_value[canon(w.value)].append(w)
    out: list[Write] = []
    for value in final:
        sources = by_value.get(canon(value), [])
        for delete in deletes:
            if sources and all(_surely_before(w, delete) for w in sources):
                out.append(delete)
                break
    return out


# --------------------------------------------------------------------------- mv


@dataclass(frozen=True)
class MvOutcome:
    """What multi-value (causal siblings) allows for one key.

    ``required``: values every member must keep as siblings (completed writes that no
    write could have superseded); ``allowed``: values that may be siblings;
    ``superseded``: values some write's context certainly covered.
    """

    required: frozenset[str]
    allowed: frozenset[str]
    superseded: frozenset[str]
    values: Mapping[str, Any] = field(default_factory=dict)

    def violations(self, siblings: Sequence[Any] | None) -> list[str]:
        have = {canon(v) for v in siblings or []}
        reasons: list[str] = []
        missing = sorted(self.required - have)
        if missing:
            shown = ", ".join(repr(self.values.get(m, m)) for m in missing[:3])
            reasons.append(f"lost sibling(s) {shown}")
        extra = sorted(have - self.allowed)
        if extra:
            shown = ", ".join(extra[:3])
            reasons.append(f"sibling(s) {shown} superseded or never written")
        return reasons


def mv_model(writes: Sequence[Write], reads: Iterable[tuple[Any, Sequence[Any]]] = ()) -> MvOutcome:
    """The set of causally maximal writes of one key.

    Causality comes from contexts: a context returned by a GET (``reads``: pairs of
    context and the values that GET saw) or by a PUT (covering the PUT's own value)
    stands for what the client had seen; a PUT or DELETE carrying that context
    supersedes exactly those values. A write without a context supersedes nothing (it
    becomes a sibling). A superseding write of unknown outcome may have happened, so
    what it covers is allowed but no longer required.
    """
    seen: dict[str, set[str]] = {}
    values: dict[str, Any] = {}
    for context, got in reads:
        seen.setdefault(canon(context), set()).update(canon(v) for v in got)
    for w in writes:
        if not w.deleted:
            values[canon(w.value)] = w.value
        if w.result_context is not None and w.happened and not w.deleted:
            seen.setdefault(canon(w.result_context), set()).add(canon(w.value))
    surely: set[str] = set()
    maybe: set[str] = set()
    for w in writes:
        if w.context is None or w.outcome == "fail":
            continue
        covered = seen.get(canon(w.context), set())
        (surely if w.happened else maybe).update(covered)
    written_ok = {canon(w.value) for w in writes if w.happened and not w.deleted}
    written_any = {canon(w.value) for w in writes if w.outcome != "fail" and not w.deleted}
    required = written_ok - surely - maybe
    allowed = written_any - surely
    return MvOutcome(frozenset(required), frozenset(allowed), frozenset(surely), values)


# --------------------------------------------------------------------------- CRDTs


@dataclass(frozen=True)
class CounterOp:
    """An increment (positive ``amount``) or decrement (negative) of a counter."""

    amount: float
    outcome: str


@dataclass(frozen=True)
class CounterRange:
    low: float
    high: float

    def admits(self, value: Any) -> bool:
        return isinstance(value, int | float) and self.low <= value <= self.high


def counter_range(ops: Iterable[CounterOp]) -> CounterRange:
    """g-counter / pn-counter: the sum of completed operations, widened by every
    operation of unknown outcome in its own direction."""
    low = high = 0.0
    for op in ops:
        if op.outcome == "fail":
            continue
        if op.outcome == "ok":
            low += op.amount
            high += op.amount
        elif op.amount >= 0:
            high += op.amount
        else:
            low += op.amount
    return CounterRange(low, high)


@dataclass(frozen=True)
class SetOp:
    """An add or remove of one element of an observed-remove set, on ``node``."""

    element: Any
    add: bool
    invoked: float
    completed: float
    outcome: str
    node: str | None = None


@dataclass(frozen=True)
class SetRead:
    """A read of an observed-remove set on ``node``: the elements it returned."""

    node: str
    invoked: float
    completed: float
    elements: frozenset[str]  # canonical


@dataclass(frozen=True)
class SetOutcome:
    required: frozenset[str]
    allowed: frozenset[str]
    elements: Mapping[str, Any]
    forbidden: frozenset[str] = frozenset()

    def violations(self, value: Sequence[Any] | None) -> list[str]:
        have = {canon(v) for v in value or []}
        reasons: list[str] = []
        missing = sorted(self.required - have)
        if missing:
            shown = ", ".join(repr(self.elements.get(m, m)) for m in missing[:3])
            reasons.append(f"added element(s) {shown} missing although no remove could see them")
        removed = sorted(have & self.forbidden)
        if removed:
            shown = ", ".join(repr(self.elements.get(m, m)) for m in removed[:3])
            reasons.append(
                f"element(s) {shown} still present although a remove observed every add of "
                "them (removes ignored)"
            )
        extra = sorted(have - self.allowed - self.forbidden)
        if extra:
            reasons.append(f"element(s) {', '.join(extra[:3])} never added")
        return reasons


def or_set_model(
    ops: Sequence[SetOp],
    reads: Sequence[SetRead] = (),
    unseen: Callable[[SetOp, SetOp], bool] | None = None,
) -> SetOutcome:
    """Add-wins observed-remove set.

    A remove only removes the adds it observed, and under gossip a remove on one node
    may not have observed an add made elsewhere before it. So an element *must* be
    present when some completed add could be observed by no remove of it: every remove
    ended before the add began, or ``unseen(add, remove)`` says it could not see the add
    (it ran cut off from the adder since before the add: a concurrent add and remove,
    where add-wins keeps the element and a remove-wins or LWW-element set drops it);
    it *may* be present when it was ever added;
    and it *must be absent* when a completed remove observed every add of it. A remove
    on node X certainly observed an add made on X that completed before the remove
    began, and an add that was the only one of its element begun before a read of X
    that showed the element and completed before the remove began (that read's element
    can only carry that add's tag).
    """
    removes: dict[str, list[SetOp]] = defaultdict(list)
    elements: dict[str, Any] = {}
    adds: dict[str, list[SetOp]] = defaultdict(list)
    for op in ops:
        key = canon(op.element)
        elements[key] = op.element
        if op.outcome == "fail":
            continue
        (adds if op.add else removes)[key].append(op)

    def blind(add: SetOp, remove: SetOp) -> bool:
        end = remove.completed if remove.outcome == "ok" else INF
        return end < add.invoked or (unseen is not None and unseen(add, remove))

    required: set[str] = set()
    allowed: set[str] = set()
    for key, made in adds.items():
        allowed.add(key)
        if any(op.outcome == "ok" and all(blind(op, r) for r in removes[key]) for op in made):
            required.add(key)
    by_node: dict[str, list[SetRead]] = defaultdict(list)
    for read in reads:
        by_node[read.node].append(read)
    forbidden: set[str] = set()
    for op in ops:
        if op.add or op.outcome != "ok" or op.node is None:
            continue
        key = canon(op.element)
        made = adds.get(key, [])
        if made and all(_observed(a, op, made, by_node.get(op.node, ())) for a in made):
            forbidden.add(key)
    return SetOutcome(
        frozenset(required - forbidden), frozenset(allowed - forbidden), elements,
        frozenset(forbidden),
    )


def _observed(add: SetOp, remove: SetOp, adds: Sequence[SetOp], reads: Sequence[SetRead]) -> bool:
    """Whether ``remove`` certainly observed ``add`` (see :func:`or_set_model`)."""
    if add.node == remove.node and add.completed < remove.invoked:
        return True
    key = canon(add.element)
    for read in reads:
        if read.completed >= remove.invoked or key not in read.elements:
            continue
        if all(a is add or a.invoked >= read.completed for a in adds):
            return True
    return False


# --------------------------------------------------------------------------- latency


def quantiles(samples: Sequence[float], qs: Sequence[float] = (0.5, 0.9, 0.99)) -> dict[str, float]:
    """Nearest-rank quantiles plus min and max; ``{}`` for no samples. ``O(m log m)``."""
    if not samples:
        return {}
    ordered = sorted(samples)
    out = {"min": ordered[0]}
    for q in qs:
        rank = max(1, math.ceil(q * len(ordered)))
        out[f"p{round(q * 100):d}"] = ordered[rank - 1]
    out["max"] = ordered[-1]
    return out
