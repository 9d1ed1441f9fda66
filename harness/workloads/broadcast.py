"""Dissemination: every accepted broadcast reaches every member in time; latency quantiles
from node-side times, and messages per operation from node metrics (Maelstrom reports both
as ``stable-latencies`` and ``msgs-per-op``).

It also owns the broadcast operation and the rule that draws it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import wraps
from typing import TYPE_CHECKING, Any

from gossipcert.harness.history import Entry
from gossipcert.harness.judging.checker import (
    EVIDENCE_LIMIT,
    Checker,
    JudgingContext,
    Tally,
    as_index,
    capability_checker,
    make_verdict,
    timed_verdict,
    unsettled,
)
from gossipcert.harness.judging.clock import run_time
from gossipcert.harness.judging.index import INF, HistoryIndex, PairedOp
from gossipcert.harness.judging.models import quantiles
from gossipcert.harness.judging.verdict import Requirement, Verdict
from gossipcert.harness.workloads.operations import Op
from gossipcert.harness.workloads.strategies import Choice, GeneratorRules, SequenceBuilder, Space
from hypothesis import strategies as st

if TYPE_CHECKING:
    from gossipcert.harness.workloads.interpreter import Execution


__all__ = [
    "OPERATIONS",
    "CHECKERS",
    "CLIENT_OPS",
    "GENERATOR",
    "Broadcast",
    "broadcast_integrity",
    "broadcast_latencies",
    "check_broadcast_delivery",
    "check_broadcast_latency",
    "check_messages_per_op",
    "cut_during",
    "member_deadline",
]


# ---- operations -----------------------------------------------------------------------


@dataclass(frozen=True)
class Broadcast(Op):
    kind = "broadcast"
    needs = "broadcast"
    client_call = True
    summary = "disseminate a message from a node (its id unique in the run)"
    node: str
    id: str
    payload: Any = None

    def with_namespace(self, prefix: str) -> Op:
        return replace(self, id=prefix + self.id)

    def run(self, x: Execution) -> None:
        payload = self.payload if self.payload is not None else {"hello": self.node}
        x.driver.call(self.node, "broadcast", {"id": x.broadcast_id(self.id),
                                               "payload": payload})
        x.sent_broadcasts.append(self.id)


# ---- generator rules ------------------------------------------------------------------


def _choices(
    space: Space, node: st.SearchStrategy[int], key: st.SearchStrategy[int]
) -> list[st.SearchStrategy[Choice]]:
    if "broadcast" not in space.capabilities:
        return []
    return [st.tuples(st.just("broadcast"), node)]


def _broadcast(b: SequenceBuilder, node: int) -> None:
    pool = [] if b.paused is not None or b.cut_open else b.up()
    if pool:
        origin = b.pick(pool, node)
        b.broadcasts += 1
        msg_id = f"{b.ns}b{b.broadcasts}"
        b.out.append(Broadcast(origin, msg_id, {"from": origin}))
        b.pending_broadcasts.append(msg_id)


GENERATOR = GeneratorRules(_choices, {"broadcast": _broadcast})


# ---- checkers --------------------------------------------------------------------------


# Operations a client makes that the cluster must spread: the "operations" of msgs-per-op.
CLIENT_OPS = ("broadcast", "put", "delete", "crdt")


def member_deadline(
    index: HistoryIndex, t0: float, bound: float, repair: float = 0.0
) -> tuple[float, float | None]:
    """When a member must hold a broadcast sent at ``t0``, and the heal it was deferred
    to (None when it was not).

    The bound counts from the call; but when a partition or cut held at some time inside
    the window, it counts from ``repair`` after that fault's heal instead (the time the
    healed sides need to see each other and run anti-entropy: ``heal_repair_ms``),
    again and again while a later fault falls inside the window so deferred. That holds
    for every member, not only those cut off from the origin: rumor mongering spends its
    retransmissions on members it cannot tell are unreachable, so even the origin's own
    side may be left for anti-entropy to repair. A fault never healed gives ``inf``: no
    deadline. This is a deferral, not an excuse: Maelstrom, too, asks for delivery once
    partitions heal.
    """
    start, heal = t0, None
    while True:
        after = t0 if heal is None else heal
        ends = [c.end for c in index.cuts if c.start <= start + bound and c.end > after]
        if not ends:
            return start + bound, heal
        heal = max(ends)
        if heal == INF:
            return INF, None
        start = heal + repair


def cut_during(index: HistoryIndex, t0: float, t1: float) -> bool:
    """Whether a partition or cut held, anywhere in the cluster, at some time in
    ``[t0, t1]``: a broadcast spread across it was slowed by the fault, not measured."""
    return any(c.start <= t1 and c.end >= t0 for c in index.cuts)


# What exercises broadcast: sends and reads of what arrived (see capability_checker).
checker = capability_checker(
    calls=("broadcast", "broadcasts"), reads=("broadcasts",), clock_kinds=("broadcast",)
)


def broadcast_integrity(index: HistoryIndex) -> list[dict[str, Any]]:
    """Every delivery that is not the broadcast that was sent, from what the members
    reported: a payload other than the one the harness sent (``payload``), an origin
    other than the node the harness called (``origin``), and one broadcast delivered
    twice to one member in one life (``duplicate``: listed twice in one read of
    ``GET /v1/broadcasts``, or two deliveries in its event feed; an event's origin is
    checked too). A member that reports no
    payload or origin (null: a Maelstrom node's messages carry neither) is not judged on
    it; one that reports them must report what was sent."""
    sent = {
        str(op.args["id"]): op for op in index.ops.get("broadcast", [])
        if op.args.get("id") is not None and op.node is not None
    }
    found: dict[tuple[str, str, str], dict[str, Any]] = {}

    def note(kind: str, member: str, bid: str, **detail: Any) -> None:
        found.setdefault((kind, member, bid),
                         {"kind": kind, "member": member, "broadcast": bid, **detail})

    for read in index.ops.get("broadcasts", []):
        if read.outcome != "ok" or read.node is None or not isinstance(read.result, Mapping):
            continue
        items = [i for i in read.result.get("received") or [] if isinstance(i, Mapping)]
        listed = Counter(str(i.get("id")) for i in items if i.get("id") is not None)
        for bid, times in listed.items():
            if times > 1:
                note("duplicate", read.node, bid, times=times, read_ms=read.completed)
        for item in items:
            op = sent.get(str(item.get("id")))
            if op is None:
                continue
            bid = str(item.get("id"))
            payload = item.get("payload")
            if payload is not None and "payload" in op.args and payload != op.args["payload"]:
                note("payload", read.node, bid, sent=op.args["payload"], received=payload,
                     read_ms=read.completed)
            origin = item.get("origin")
            if origin is not None and str(origin) != op.node:
                note("origin", read.node, bid, sent_from=op.node, reported=origin,
                     read_ms=read.completed)
    events: dict[tuple[str, str, float | None], set[Any]] = defaultdict(set)
    for e in index.entries:
        if e.type != "event" or e.op != "broadcast" or e.node is None:
            continue
        if e.args.get("id") is None:
            continue
        event_id = str(e.args["id"])
        sent_op, origin = sent.get(event_id), e.args.get("origin")
        if sent_op is not None and origin is not None and str(origin) != sent_op.node:
            note("origin", e.node, event_id, sent_from=sent_op.node, reported=origin,
                 source="event feed")
        life = index.life_at(e.node, e.time_ms)
        key = (e.node, event_id, None if life is None else life.ready)
        # Two entries of one event (the same seq) are one delivery recorded twice.
        events[key].add(e.args.get("seq", (e.time_ms, len(events[key]))))
    for (node, bid, _), seqs in events.items():
        if len(seqs) > 1:
            note("duplicate", node, bid, times=len(seqs), source="event feed")
    return sorted(found.values(), key=lambda d: (d["kind"], d["broadcast"], d["member"]))


def _describe_integrity(first: Mapping[str, Any]) -> str:
    where = f"broadcast {first['broadcast']!r} at {first['member']}"
    if first["kind"] == "payload":
        return (f"{where} was delivered with payload {first['received']!r}, sent as "
                f"{first['sent']!r}")
    if first["kind"] == "origin":
        return (f"{where} was reported from {first['reported']!r}, sent from "
                f"{first['sent_from']!r}")
    return f"{where} was delivered {first['times']} times"


def _with_integrity(check: Checker) -> Checker:
    """BCAST-DELIVERY also asks that what arrives is what was sent, once: a delivery with
    another payload or origin, or a second one, fails it whatever the timing showed.
    Applied around the contract's wrapper, so such a failure (a count of what members
    reported, no timing in it) is never made inconclusive by a stalled host."""

    @wraps(check)
    def checked(history: Sequence[Entry] | HistoryIndex, requirement: Requirement,
                params: Mapping[str, float]) -> Verdict:
        index = as_index(history)
        verdict = check(index, requirement, params)
        if verdict.status == "not-claimed":
            return verdict
        wrong = broadcast_integrity(index)
        if not wrong:
            return verdict
        kinds = Counter(w["kind"] for w in wrong)
        shown = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        text = (f"{len(wrong)} deliveries not as sent ({shown}), e.g. "
                f"{_describe_integrity(wrong[0])}; timing: {verdict.evidence}")
        details = {**verdict.details, "not_as_sent": wrong[:EVIDENCE_LIMIT],
                   "not_as_sent_count": len(wrong)}
        return replace(verdict, status="fail", evidence=text, details=details)

    return checked


@_with_integrity
@checker
def check_broadcast_delivery(
    judging: JudgingContext, requirement: Requirement, bound: float
) -> Verdict:
    """BCAST-DELIVERY: every accepted broadcast reaches every member up through its
    window, as sent (:func:`broadcast_integrity`).

    An ``info`` broadcast (outcome unknown) is held to the requirement only once some
    node received it; one whose origin dies before the deadline only if another did. A
    broadcast sent while a partition or cut held is owed within the bound counted from
    the heal plus the time the healed sides need to repair by anti-entropy
    (:func:`member_deadline`).
    """
    index = judging.index
    tally = Tally(bound)
    repair = judging.params["heal_repair_ms"]
    gaps = 0  # first seen after the deadline, after a gap in the harness's reads
    broadcasts = index.ops.get("broadcast", [])
    if not broadcasts:
        return make_verdict(requirement, "untested", None, bound, "no broadcast was sent")
    for op in broadcasts:
        bid, origin = op.args.get("id"), op.node
        if bid is None or origin is None or op.outcome == "fail":
            continue
        received = index.deliveries.get(str(bid), {})
        if op.outcome != "ok" and not received:
            continue  # maybe never happened
        t0 = op.invoked
        origin_life = next(
            (lf for lf in index.lives.get(origin, ()) if lf.ready <= t0 <= lf.end), None
        )
        relayed = bool(set(received) - {origin})
        for member in index.nodes:
            life = index.life_at(member, t0)
            if member == origin or life is None:
                continue
            detail: dict[str, Any] = {"broadcast": str(bid), "origin": origin,
                                      "member": member, "sent_ms": t0}
            at = received.get(member)
            if at is not None and at >= life.end:
                at = None
            if at is not None and (at <= t0 + bound or not cut_during(index, t0, at)):
                deadline, heal = t0 + bound, None  # in time, or no fault stood in the way
            else:
                deadline, heal = member_deadline(index, t0, bound, repair)
            if deadline == INF:
                tally.excluded += 1  # cut off from the origin until the history ended
                continue
            start = t0 if heal is None else heal + repair
            if heal is not None:
                detail["deferred_to_heal_ms"] = heal
                detail["counted_from_ms"] = start
            if origin_life is not None and origin_life.end < deadline and not relayed:
                tally.undetermined += 1  # only the origin had it, and it died
                continue
            if at is not None and at > deadline and not index.delivery.certainly_late(
                str(bid), member, deadline
            ):
                tally.undetermined += 1  # first seen late, but maybe received in time
                gaps += 1
            elif at is not None:
                tally.observe(max(0.0, at - start), {**detail, "received_ms": at}, since=start)
            elif (
                life.end < deadline
                or index.end_ms < deadline
                or not index.delivery.asked_after(member, deadline)
            ):
                tally.undetermined += 1
            else:
                tally.never(min(index.end_ms, life.end) - start, detail, since=start)
    verdict = timed_verdict(
        requirement, tally, "deliveries", "no broadcast could be followed to its deadline"
    )
    verdict = unsettled(verdict, gaps, "delivery(ies)")
    first = tally.missing[0] if tally.missing else None
    if first is not None and "deferred_to_heal_ms" in first:
        note = (f"; {first['member']} was cut off from {first['origin']} and still lacked it "
                f"{first['at_least_ms']:.0f} ms after the heal at "
                f"{run_time(first['deferred_to_heal_ms'], index.begin_ms)}")
        verdict = replace(verdict, evidence=verdict.evidence + note)
    return verdict


def broadcast_latencies(index: HistoryIndex) -> list[dict[str, Any]]:
    """Per (accepted broadcast, member that received it): the latency from the call.

    A member the origin could not reach at some time between the call and the receipt is
    left out: that latency measures the fault's length, not dissemination (BCAST-DELIVERY
    judges it from the heal)."""
    out: list[dict[str, Any]] = []
    for op in index.ops.get("broadcast", []):
        bid, origin = op.args.get("id"), op.node
        if bid is None or origin is None or op.outcome == "fail":
            continue
        for member, at in index.deliveries.get(str(bid), {}).items():
            if member == origin:
                continue
            life = index.life_at(member, op.invoked)
            if life is None or at >= life.end:
                continue
            if index.separated(origin, member, op.invoked, at, directed=True):
                continue
            out.append(
                {"broadcast": str(bid), "member": member, "latency_ms": max(0.0, at - op.invoked),
                 "sent_ms": op.invoked}
            )
    return out


def _resolution_ms(index: HistoryIndex) -> tuple[float, str]:
    """How finely receive times were sampled: node clocks (1 ms) when the nodes reported
    their own receive times, else the largest gap between two reads of one node."""
    reads = index.ops.get("broadcasts", [])
    stamped = any(
        isinstance(r.result, Mapping)
        and any(item.get("at_ms") is not None for item in r.result.get("received") or [])
        for r in reads
    )
    if index.broadcast_events or stamped:
        return 1.0, "node-side receive times (whole milliseconds)"
    gaps: dict[str, list[float]] = defaultdict(list)
    for r in reads:
        if r.node is not None and r.outcome == "ok":
            gaps[r.node].append(r.completed)
    widest = 0.0
    for times in gaps.values():
        times.sort()
        widest = max([widest, *(b - a for a, b in zip(times, times[1:], strict=False))])
    return widest, "harness reads of GET /v1/broadcasts (no node-side times)"


@checker
def check_broadcast_latency(
    judging: JudgingContext, requirement: Requirement, bound: float
) -> Verdict:
    """BCAST-LATENCY: the median dissemination latency stays near the push-gossip round
    count; p90/p99/max and the sampling resolution are reported alongside."""
    index = judging.index
    samples = broadcast_latencies(index)
    if not samples:
        why = "no broadcast was received by a member other than its origin"
        return make_verdict(requirement, "untested", None, bound, why)
    values = [s["latency_ms"] for s in samples]
    q = quantiles(values)
    resolution, source = _resolution_ms(index)
    details: dict[str, Any] = {
        "quantiles_ms": {k: round(v, 1) for k, v in q.items()},
        "samples": len(values),
        "broadcasts": len({s["broadcast"] for s in samples}),
        "resolution_ms": resolution,
        "source": source,
        "latencies_ms": sorted(round(v, 1) for v in values)[:2000],
    }
    median = q["p50"]
    status = "pass" if median <= bound else "fail"
    relation = "<=" if status == "pass" else ">"
    text = (
        f"median {median:.0f} ms {relation} {bound:.0f} ms over {len(values)} deliveries; "
        f"p90 {q['p90']:.0f}, p99 {q['p99']:.0f}, max {q['max']:.0f} ms "
        f"(resolution {resolution:.0f} ms)"
    )
    # The deliveries above the bound are what a failed median is about.
    late = [(x["sent_ms"], x["sent_ms"] + x["latency_ms"]) for x in samples
            if x["latency_ms"] > bound]
    return make_verdict(requirement, status, median, bound, text, details, late)


def _rounds(reads: Sequence[PairedOp]) -> list[tuple[float, float, dict[str, Mapping[str, Any]]]]:
    """Metrics reads grouped into rounds (``args.round``, else one read per node in a row):
    (first invoked, last completed, node -> counters)."""
    grouped: dict[Any, list[PairedOp]] = defaultdict(list)
    loose: list[PairedOp] = []
    for r in reads:
        if r.outcome != "ok" or r.node is None or not isinstance(r.result, Mapping):
            continue
        key = r.args.get("round")
        (grouped[key] if key is not None else loose).append(r)
    for r in loose:  # without round labels: a new round whenever a node repeats
        grouped[("auto", len(grouped))].append(r)
    out = []
    for members in grouped.values():
        counters = {str(r.node): r.result for r in members if r.result is not None}
        out.append((min(r.invoked for r in members), max(r.completed for r in members), counters))
    out.sort(key=lambda x: x[0])
    return out


def _sent(counters: Mapping[str, Any]) -> float | None:
    value = counters.get("messages_sent")
    return float(value) if isinstance(value, int | float) else None


def _delta(
    first: dict[str, Mapping[str, Any]], last: dict[str, Mapping[str, Any]]
) -> tuple[float, list[str]]:
    total = 0.0
    nodes: list[str] = []
    for node, counters in last.items():
        a, b = _sent(first.get(node, {})), _sent(counters)
        if a is None or b is None or b < a:  # missing, or a restart reset its counters
            continue
        total += b - a
        nodes.append(node)
    return total, sorted(nodes)


@checker
def check_messages_per_op(
    judging: JudgingContext, requirement: Requirement, bound: float
) -> Verdict:
    """BCAST-MSGS-PER-OP: messages the whole cluster sent per client operation, over the
    window between the metrics rounds around the workload, net of the background rate
    (probes, gossip, push-pull) measured between metrics rounds in a quiet phase."""
    index = judging.index
    rounds = _rounds(index.ops.get("metrics", []))
    if len(rounds) < 2:
        why = "fewer than two rounds of GET /v1/metrics in the history"
        return make_verdict(requirement, "untested", None, bound, why)
    ops = sorted(
        op.invoked for name in CLIENT_OPS for op in index.ops.get(name, []) if op.outcome != "fail"
    )
    best: tuple[float, float, float, int, list[str]] | None = None
    for (_s0, e0, c0), (s1, _e1, c1) in zip(rounds, rounds[1:], strict=False):
        count = sum(1 for t in ops if e0 <= t <= s1)
        if count:
            total, nodes = _delta(c0, c1)
            if nodes and (best is None or count > best[3]):
                best = (e0, s1, total, count, nodes)
    if best is None:
        why = "no client operation fell between two metrics rounds"
        return make_verdict(requirement, "untested", None, bound, why)
    t0, t1, total, count, nodes = best
    background_rate = _background_rate(index, rounds, ops)
    duration = max(t1 - t0, 1.0)
    net = total - (background_rate or 0.0) * duration
    measured = max(0.0, net) / count
    details: dict[str, Any] = {
        "window_ms": [t0, t1],
        "operations": count,
        "messages": total,
        "nodes": nodes,
        "gross_per_op": round(total / count, 2),
    }
    if background_rate is not None:
        details["background_per_s"] = round(background_rate * 1000.0, 1)
    status = "pass" if measured <= bound else "fail"
    relation = "<=" if status == "pass" else ">"
    text = (
        f"{measured:.1f} messages per operation {relation} {bound:.0f} "
        f"({count} operations, {total:.0f} messages in {duration:.0f} ms"
        + (
            f", net of {background_rate * 1000:.0f}/s background)"
            if background_rate is not None
            else ", background not measured)"
        )
    )
    return make_verdict(requirement, status, measured, bound, text, details)


def _background_rate(
    index: HistoryIndex,
    rounds: Sequence[tuple[float, float, dict[str, Mapping[str, Any]]]],
    ops: Sequence[float],
) -> float | None:
    """Messages per ms with no client operation, between two rounds inside a quiet phase."""
    for start, end in index.phases.get("quiet", []):
        inside = [r for r in rounds if r[0] >= start and r[1] <= end]
        if len(inside) >= 2:
            (_, e0, c0), (s1, _, c1) = inside[0], inside[-1]
            if any(e0 <= t <= s1 for t in ops) or s1 <= e0:
                continue
            total, nodes = _delta(c0, c1)
            if nodes:
                return total / (s1 - e0)
    return None


# The operations this capability adds to the vocabulary.
OPERATIONS: tuple[type[Op], ...] = (Broadcast,)


# The checkers of this capability's requirements, by the name the catalogue gives.
CHECKERS: dict[str, Checker] = {
    "check_broadcast_delivery": check_broadcast_delivery,
    "check_broadcast_latency": check_broadcast_latency,
    "check_messages_per_op": check_messages_per_op,
}
