"""The history index shared by every checker, and the walking skeleton's checkers.

Every checker has the signature ``check_x(history, requirement, params) -> Verdict``:
``params`` are the bound's names (:func:`harness.bounds.derived_parameters`), and
``requirement.constants`` adds the catalogue constants. :func:`run_checks` wires the
whole catalogue to a history.

Conventions, shared by all checkers:

* Times compared are the history's ``time_ms``; node-side observations (``event``
  entries, ``at_ms`` of received broadcasts) carry the node's own clock, which is the
  harness host's clock, so they compare with harness times directly.
* A read is an interval ``[invoked, completed]``, never a point: latencies are measured
  to its completion (an upper bound), and it contradicts another observation (a
  regression: dead back to suspect, alive undone after settling, a suspicion inside a
  window) only when it was certainly served after it, invoked no sooner than the other
  could have happened; event times count to their node clock's resolution
  (:class:`_Timeline`).
* A node is live at ``t`` when a ``start`` of it completed ``ok`` before ``t`` and no
  ``kill`` fault hit it since.
* A pair whose deadline falls after the history ends, or after one side was killed, is
  *undetermined*: it neither passes nor fails. A requirement with nothing determined is
  ``untested`` (its evidence says why), never a silent pass; one whose capability the
  implementation does not declare is ``not-claimed``.
* A member cut off by a partition (or a one-way ``cut``, either direction) inside a
  window, and not seen in time, is *excluded* from that window: partitions and cuts are
  judged by PARTITION-HEAL, not by every other requirement. Whatever is seen in time
  counts, partition or not.
* Checkers index the history once (``O(m log m)`` for ``m`` entries) and then do work
  proportional to what they check; nothing scans the history per pair.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import wraps
from typing import Any

from gossipcert.harness.bounds import evaluate
from gossipcert.harness.history import Entry
from gossipcert.harness.models import REALTIME_TOLERANCE_MS, Write
from gossipcert.harness.verdict import Requirement, Verdict

__all__ = [
    "REALTIME_TOLERANCE_MS",
    "Checker",
    "check_broadcast_delivery",
    "with_clock_violations",
    "check_detection_speed",
    "check_failure_detection",
    "check_kv_convergence",
    "check_member_join",
    "check_no_false_positive",
    "check_partition_heal",
]

Checker = Callable[[Sequence[Entry], Requirement, Mapping[str, float]], Verdict]

INF = math.inf

# Evidence lists are capped so a report stays readable whatever the cluster size.
_EVIDENCE_LIMIT = 10
# Default allowance between node clocks and the harness's (``meta.clock_skew_ms``
# overrides it): one host's processes share a clock; NTP keeps a LAN within a few ms.
DEFAULT_CLOCK_SKEW_MS = 250.0

# Which operations exercise a capability: if all of them answered 501, it is missing.
_CAPABILITY_OPS = {
    "membership": ("members",),
    "broadcast": ("broadcast", "broadcasts"),
    "kv": ("put", "kv", "get", "delete"),
    "crdt": ("crdt", "crdt_read"),
}

# The reads that tell whether a capability's requirements can be judged at all.
_CAPABILITY_READS = {
    "membership": ("members",),
    "failure-detection": ("members",),
    "broadcast": ("broadcasts",),
    "kv": ("kv", "get"),
    "crdt": ("crdt_read",),
    "encryption": ("members",),
}

_DEAD_STATUSES = ("dead", "absent")

# Faults after which a node process is gone until a later ``start`` completes.
# ("absent": a members read that no longer lists it also ends one.)
_LIFE_ENDING_FAULTS = ("kill", "restart", "stop")


# --------------------------------------------------------------------------- the index


@dataclass(frozen=True)
class _Life:
    """One incarnation of a node process: launched, ready, killed (or never)."""

    node: str
    launched: float
    ready: float
    end: float = INF
    implicit: bool = False  # no start op in the history: assumed up from its beginning
    end_cause: str = ""  # the fault (kill, restart) or leave that ended it


@dataclass(frozen=True)
class _Op:
    """An invoke paired with its completion (``info`` when it never completed)."""

    op: str
    node: str | None
    call: int | None
    invoked: float
    outcome: str
    completed: float
    args: Mapping[str, Any]
    result: Mapping[str, Any] | None
    seq: int = -1  # history index of the completion (order among same-time entries)


@dataclass(frozen=True)
class _Cut:
    """A ``partition`` or ``cut`` fault, from itself to the next heal.

    ``group`` maps node -> group index (a partition: every link between groups is cut
    both ways); ``links`` are the directed ``(src, dst)`` pairs a ``cut`` fault drops.
    """

    start: float
    end: float
    group: Mapping[str, int]
    links: frozenset[tuple[str, str]] = frozenset()

    def separates(self, a: str, b: str, directed: bool = False) -> bool:
        """Whether this fault cuts ``a`` from ``b``: ``a -> b`` only when ``directed``,
        else either direction (a member that cannot hear, or cannot answer, another
        cannot be expected to see it)."""
        if (a, b) in self.links or (not directed and (b, a) in self.links):
            return True
        ga, gb = self.group.get(a), self.group.get(b)
        return ga is not None and gb is not None and ga != gb


@dataclass
class _Timeline:
    """Everything one observer said about one subject, in time order.

    Each observation is an interval, not a point: a read was served somewhere in
    ``[invoked, completed]``, an event at its ``at_ms`` give or take the node clock's
    resolution (a node may truncate or round). ``times`` is the sort key and the time a
    latency is measured to (a read's completion, an event's ``at_ms``: an upper bound
    for detection and settling times); ``earliest`` and ``latest`` bound when the
    observation was really served, and :meth:`served_after` orders two of them only when
    the intervals allow it. Two events of one node's own feed keep the feed's order.
    """

    times: list[float] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    earliest: list[float] = field(default_factory=list)
    latest: list[float] = field(default_factory=list)
    from_feed: list[bool] = field(default_factory=list)
    by_status: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))

    def status_at(self, t: float) -> str | None:
        """The last status reported at or before ``t``."""
        i = bisect_right(self.times, t)
        return self.statuses[i - 1] if i else None

    def first(self, statuses: Iterable[str], after: float) -> float | None:
        """The first time at or after ``after`` that one of ``statuses`` was reported."""
        i = self.first_index(statuses, after)
        return None if i is None else self.times[i]

    def first_index(self, statuses: Iterable[str], after: float) -> int | None:
        """The position of the first observation at or after ``after`` in ``statuses``."""
        start = bisect_left(self.times, after)
        best: int | None = None
        for status in statuses:
            positions = self.by_status.get(status, [])
            j = bisect_left(positions, start)
            if j < len(positions) and (best is None or positions[j] < best):
                best = positions[j]
        return best

    def served_after(self, later: int, earlier: int) -> bool:
        """Whether observation ``later`` was certainly served after ``earlier``: it was
        invoked (or stamped) no sooner than ``earlier`` could have happened, or both are
        events of the node's own feed in that order."""
        if self.from_feed[later] and self.from_feed[earlier]:
            return later > earlier
        return self.earliest[later] >= self.latest[earlier]

    def certainly_not_yet(self, statuses: Iterable[str], after: float, t: float) -> bool:
        """Whether, at harness time ``t``, the observer certainly had not yet reported one
        of ``statuses`` (first reported after ``after``): that first report is the node's
        own event (its word, checked against the polls), or some other report was
        certainly served at or after ``t``. A first report that is only a read after a
        gap in the reads says nothing of when the change happened inside the gap."""
        i = self.first_index(statuses, after)
        if i is None:
            return True
        if self.from_feed[i]:
            return self.times[i] > t
        j = bisect_left(self.times, t)
        return any(self.earliest[k] >= t for k in range(j, i))

    def certainly_after(self, i: int, t: float) -> bool:
        """Whether observation ``i`` was served at or after the harness time ``t``."""
        return self.earliest[i] >= t

    def certainly_within(self, i: int, start: float, end: float) -> bool:
        """Whether observation ``i`` was served inside ``[start, end]`` whatever its
        interval hides."""
        return self.earliest[i] >= start and self.latest[i] <= end

    def span(self, start: float, end: float) -> range:
        """Positions of the observations whose ``times`` fall in ``(start, end]``."""
        return range(bisect_right(self.times, start), bisect_right(self.times, end))


@dataclass
class _Index:
    """A history digested once, in the shapes every checker needs."""

    nodes: list[str]
    timing: Mapping[str, Any]
    capabilities: frozenset[str] | None
    conflict_policy: str | None
    policies: frozenset[str] | None
    begin_ms: float
    end_ms: float
    lives: dict[str, list[_Life]]
    kills: list[Entry]
    heals: list[float]
    cuts: list[_Cut]
    phases: dict[str, list[tuple[float, float]]]
    ops: dict[str, list[_Op]]
    views: dict[tuple[str, str], _Timeline]
    # Node-stamped times the harness's own observations contradict (see _deliveries).
    clock_violations: list[dict[str, Any]]
    delivery: _Deliveries
    member_events: int  # how many member events the nodes' feeds gave: silence is evidence
    faults: list[Entry] = field(default_factory=list)  # every fault, in time order
    phase_args: dict[str, list[Mapping[str, Any]]] = field(default_factory=dict)
    broadcast_events: int = 0  # broadcast deliveries reported by node event feeds
    intruders: frozenset[str] = frozenset()  # nodes started with a wrong key
    # How far a node's clock may be from the harness's: node-reported times (LWW
    # timestamps) outside the harness's own call window by more are violations.
    clock_skew_ms: float = DEFAULT_CLOCK_SKEW_MS
    # What was asked of intruders (but their start): kept apart so that requirements about
    # the cluster's own members never expect an intruder's write or broadcast to spread.
    intruder_ops: dict[str, list[_Op]] = field(default_factory=dict)

    @property
    def deliveries(self) -> dict[str, dict[str, float]]:
        """Broadcast id -> node -> when it received it (see :class:`_Deliveries`)."""
        return self.delivery.at

    def life_at(self, node: str, t: float) -> _Life | None:
        for life in self.lives.get(node, ()):
            if life.ready <= t < life.end:
                return life
        return None

    def live_at(self, node: str, t: float) -> bool:
        return self.life_at(node, t) is not None

    def live_through(self, node: str, t0: float, t1: float) -> bool:
        """Whether one life of ``node`` spans all of ``[t0, t1]``."""
        life = self.life_at(node, t0)
        return life is not None and t1 < life.end

    def separated(self, a: str, b: str, t0: float, t1: float, directed: bool = False) -> bool:
        """Whether a partition or cut separated ``a`` from ``b`` at any time in
        ``[t0, t1]`` (only the ``a -> b`` direction of a one-way cut when ``directed``)."""
        return any(
            c.start <= t1 and c.end >= t0 and c.separates(a, b, directed) for c in self.cuts
        )

    def cut_open_at(self, t: float) -> _Cut | None:
        for cut in self.cuts:
            if cut.start <= t < cut.end:
                return cut
        return None

    def timeline(self, observer: str, subject: str) -> _Timeline:
        return self.views.get((observer, subject)) or _Timeline()

    def writes_stopped(self) -> float | None:
        """When the kv workload stopped: the later of the writes phase's end and the last put.

        A put of unknown outcome counts from its invocation; taking the latest point keeps
        a write made outside the phase from being charged to convergence.
        """
        points = [end for _, end in self.phases.get("writes", [])]
        points += [
            p.completed if p.completed < INF else p.invoked
            for name in ("put", "delete")
            for p in self.ops.get(name, [])
        ]
        return max(points, default=None)


_cache: tuple[Sequence[Entry], int, _Index] | None = None


def _index(history: Sequence[Entry]) -> _Index:
    """Index a history, reusing the last index when the same list is checked again."""
    global _cache
    if _cache is not None and _cache[0] is history and _cache[1] == len(history):
        return _cache[2]
    index = _build_index(history)
    _cache = (history, len(history), index)
    return index


def _build_index(history: Sequence[Entry]) -> _Index:
    meta = next((e for e in history if e.type == "meta"), None)
    margs: Mapping[str, Any] = meta.args if meta is not None else {}
    nodes = [str(x) for x in margs.get("nodes") or []]
    if not nodes:
        nodes = sorted({e.node for e in history if e.node is not None})
    caps = margs.get("capabilities")
    capabilities = frozenset(str(c) for c in caps) if caps is not None else None
    policy = margs.get("conflict_policy")
    declared = margs.get("conflict_policies")
    policies = (
        frozenset(str(p) for p in declared)
        if isinstance(declared, list)
        else (frozenset({str(policy)}) if policy is not None else None)
    )
    times = [e.time_ms for e in history]
    begin = min(times, default=0.0)
    end = max(times, default=0.0)

    invokes: dict[int, Entry] = {}
    completions: dict[int, Entry] = {}
    orphans: list[Entry] = []
    for e in history:
        if e.type == "invoke":
            if e.call is None:
                orphans.append(e)
            else:
                invokes[e.call] = e
        elif e.type in ("ok", "fail", "info") and e.call is not None:
            completions.setdefault(e.call, e)

    ops: dict[str, list[_Op]] = defaultdict(list)
    for call, inv in invokes.items():
        done = completions.get(call)
        ops[inv.op].append(
            _Op(
                op=inv.op,
                node=inv.node if inv.node is not None else (done.node if done else None),
                call=call,
                invoked=inv.time_ms,
                outcome=done.type if done is not None else "info",
                completed=done.time_ms if done is not None else INF,
                args=inv.args,
                result=done.result if done is not None else None,
                seq=done.index if done is not None else inv.index,
            )
        )
    for call, done in completions.items():  # a completion logged without its invoke
        if call not in invokes:
            ops[done.op].append(
                _Op(
                    done.op,
                    done.node,
                    call,
                    done.time_ms,
                    done.type,
                    done.time_ms,
                    done.args,
                    done.result,
                    done.index,
                )
            )
    for inv in orphans:
        ops[inv.op].append(
            _Op(inv.op, inv.node, None, inv.time_ms, "info", INF, inv.args, None, inv.index)
        )
    for op_list in ops.values():
        op_list.sort(key=lambda o: (o.invoked, o.completed))
    intruders = frozenset(
        str(op.node)
        for op in ops.get("start", [])
        if op.node is not None and (op.args.get("key") == "wrong" or op.args.get("wrong_key"))
    )
    intruder_ops: dict[str, list[_Op]] = defaultdict(list)
    if intruders:
        for name in list(ops):
            if name == "start":
                continue
            intruder_ops[name] = [o for o in ops[name] if o.node in intruders]
            ops[name] = [o for o in ops[name] if o.node not in intruders]

    kills = sorted(
        (e for e in history if e.type == "fault" and e.op == "kill" and e.node is not None),
        key=lambda e: e.time_ms,
    )
    # A restart ends a life like a kill (the next ``start`` begins the new one); a
    # completed leave ends it too: a member that left is no longer expected to be live.
    ends = sorted(
        [
            e
            for e in history
            if e.type == "fault" and e.op in _LIFE_ENDING_FAULTS and e.node is not None
        ]
        + [
            Entry(op.seq, op.completed, "fault", "leave", op.node)
            for op in ops.get("leave", [])
            if op.outcome == "ok" and op.node is not None
        ],
        key=lambda e: e.time_ms,
    )
    lives = _lives(nodes, ops.get("start", []), ends, begin)
    heals, cuts = _cuts(history, end)
    phases = _phases(history, end)
    views, member_violations = _views(history, ops.get("members", []), nodes)
    deliveries, clock_violations = _deliveries(
        history, ops.get("broadcasts", []), ops.get("broadcast", [])
    )
    return _Index(
        nodes=nodes,
        timing=dict(margs.get("timing") or {}),
        capabilities=capabilities,
        conflict_policy=str(policy) if policy is not None else None,
        policies=policies,
        begin_ms=begin,
        end_ms=end,
        lives=lives,
        kills=kills,
        heals=heals,
        cuts=cuts,
        phases=phases,
        ops=dict(ops),
        views=views,
        delivery=deliveries,
        clock_violations=clock_violations + member_violations,
        member_events=sum(1 for e in history if e.type == "event" and e.op == "member"),
        faults=sorted((e for e in history if e.type == "fault"), key=lambda e: e.time_ms),
        phase_args=_phase_args(history),
        broadcast_events=sum(1 for e in history if e.type == "event" and e.op == "broadcast"),
        intruders=intruders,
        clock_skew_ms=float(margs.get("clock_skew_ms", DEFAULT_CLOCK_SKEW_MS)),
        intruder_ops=dict(intruder_ops),
    )


def _phase_args(history: Sequence[Entry]) -> dict[str, list[Mapping[str, Any]]]:
    """The ``args`` of each phase's start edge, in the order of :func:`_phases`."""
    out: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for e in sorted((e for e in history if e.type == "phase"), key=lambda e: e.time_ms):
        if e.args.get("edge") == "start":
            out[e.op].append(e.args)
    return dict(out)


def _lives(
    nodes: Sequence[str], starts: Sequence[_Op], kills: Sequence[Entry], begin: float
) -> dict[str, list[_Life]]:
    # (time, history index, kind, launched): same-time entries keep their history order,
    # so a kill logged right after a restart's start ends the new life.
    events: dict[str, list[tuple[float, int, int, float, str]]] = defaultdict(list)
    for op in starts:
        if op.outcome == "ok" and op.node is not None:
            events[op.node].append((op.completed, op.seq, 1, op.invoked, ""))
    for kill in kills:
        assert kill.node is not None
        events[kill.node].append((kill.time_ms, kill.index, 0, kill.time_ms, kill.op))
    lives: dict[str, list[_Life]] = {}
    # A history without any start op (e.g. a cluster started outside the harness): every
    # node is taken as up from its beginning. Otherwise a node never started was never up.
    implicit = not any(e[2] == 1 for per_node in events.values() for e in per_node)
    for node in sorted(set(nodes) | set(events)):
        mine = sorted(events.get(node, []))
        if implicit:
            mine.insert(0, (begin, -1, 1, begin, ""))
        out: list[_Life] = []
        current: _Life | None = None
        for t, _, kind, launched, cause in mine:
            if kind == 1 and current is None:
                current = _Life(node, launched, t, INF, implicit)
            elif kind == 0 and current is not None:
                out.append(
                    _Life(node, current.launched, current.ready, t, current.implicit, cause)
                )
                current = None
        if current is not None:
            out.append(current)
        lives[node] = out
    return lives


def _cuts(history: Sequence[Entry], end: float) -> tuple[list[float], list[_Cut]]:
    """Heal times, and every ``partition``/``cut`` fault as a :class:`_Cut` up to the heal
    that clears it (open-ended when none does)."""
    heals: list[float] = []
    cuts: list[_Cut] = []
    open_cuts: list[_Cut] = []
    for e in sorted((e for e in history if e.type == "fault"), key=lambda e: e.time_ms):
        if e.op == "partition":
            groups = e.args.get("groups") or []
            group = {str(node): i for i, members in enumerate(groups) for node in members}
            open_cuts.append(_Cut(e.time_ms, INF, group))
        elif e.op == "cut":
            links = frozenset(
                (str(link[0]), str(link[1]))
                for link in e.args.get("links") or []
                if isinstance(link, list | tuple) and len(link) == 2
            )
            open_cuts.append(_Cut(e.time_ms, INF, {}, links))
        elif e.op == "heal":
            heals.append(e.time_ms)
            cuts.extend(replace(c, end=e.time_ms) for c in open_cuts)
            open_cuts = []
    cuts.extend(open_cuts)
    return heals, cuts


def _phases(history: Sequence[Entry], end: float) -> dict[str, list[tuple[float, float]]]:
    phases: dict[str, list[tuple[float, float]]] = defaultdict(list)
    opened: dict[str, float] = {}
    for e in sorted((e for e in history if e.type == "phase"), key=lambda e: e.time_ms):
        edge = e.args.get("edge")
        if edge == "start":
            opened.setdefault(e.op, e.time_ms)
        elif edge == "end" and e.op in opened:
            phases[e.op].append((opened.pop(e.op), e.time_ms))
    for name, start in opened.items():
        phases[name].append((start, end))
    return dict(phases)


def clock_resolution(stamps: Sequence[float]) -> float:
    """The resolution of a node clock, judged from the ``at_ms`` it reported: the
    coarsest of 1 s, 100 ms, 10 ms and 1 ms that every stamp is a multiple of (a node
    that stamps in whole seconds is trusted to a second, not to a millisecond); 1 ms for
    fewer than three stamps, 1 us when a stamp has a fraction of a millisecond."""
    if any(t != int(t) for t in stamps):
        return 0.001
    if len(stamps) < 3:
        return 1.0
    for step in (1000, 100, 10):
        if all(int(t) % step == 0 for t in stamps):
            return float(step)
    return 1.0


# A status a read may show while an event's status still holds (the feed reports every
# change, so a read between two events shows the first one's status): a member seen
# absent after the observer reported it alive, or seen alive or suspect after it
# reported it dead or left, contradicts the event's time.
_CONTRADICTS = {"alive": ("absent",), "dead": ("alive", "suspect"), "left": ("alive", "suspect")}


def _views(
    history: Sequence[Entry], reads: Sequence[_Op], nodes: Sequence[str]
) -> tuple[dict[tuple[str, str], _Timeline], list[dict[str, Any]]]:
    """Per (observer, subject): member events plus members reads, in time order; and the
    events whose node-stamped time the harness's observations contradict.

    A read is the interval ``[invoked, completed]``; an event is its ``at_ms`` widened by
    the resolution of its node's clock on both sides. An event is accepted only inside
    what the harness saw: not after the poll that returned it, and not before a read of
    the same node that certainly followed it and, before the feed's next change of that
    member, still showed what the event says had ended. A contradicted event is a clock
    violation: it counts from the earliest time the observations allow (the last
    contradicting read's completion), or not at all when none is left.
    """
    # (time, history index, status, earliest, latest, from the node's feed)
    raw: dict[tuple[str, str], list[tuple[float, int, str, float, float, bool]]] = defaultdict(
        list
    )
    everyone = set(nodes)
    for read in reads:
        if read.outcome != "ok" or read.node is None or not isinstance(read.result, Mapping):
            continue
        listed: set[str] = set()
        span = (read.completed, -1)
        interval = (read.invoked, read.completed, False)
        for member in read.result.get("members") or []:
            subject, status = member.get("id"), member.get("status")
            if subject is None or status is None or str(subject) == read.node:
                continue
            listed.add(str(subject))
            raw[(read.node, str(subject))].append((*span, str(status), *interval))
        for subject in everyone - listed - {read.node}:
            raw[(read.node, subject)].append((*span, "absent", *interval))
    by_invoked = {
        pair: sorted((o[3], o[4], o[2]) for o in observations)
        for pair, observations in raw.items()
    }
    feed: dict[tuple[str, str], list[Entry]] = defaultdict(list)
    stamps: dict[str, list[float]] = defaultdict(list)
    for e in history:
        if e.type == "event" and e.op == "member" and e.node is not None:
            stamps[e.node].append(e.time_ms)
            subject, status = e.args.get("member"), e.args.get("status")
            if subject is not None and status is not None and str(subject) != e.node:
                feed[(e.node, str(subject))].append(e)
    violations: list[dict[str, Any]] = []
    for pair, events in feed.items():
        res = clock_resolution(stamps[pair[0]])
        events.sort(key=lambda e: (e.time_ms, e.index))
        for i, e in enumerate(events):
            status = str(e.args["status"])
            after = events[i + 1].time_ms - res if i + 1 < len(events) else INF
            at = e.time_ms
            contradiction = _event_contradiction(e, status, res, after, by_invoked.get(pair, []))
            if contradiction is not None:
                why, at = contradiction
                violations.append(
                    {
                        "node": pair[0],
                        "kind": "member",
                        "what": f"report of {pair[1]} {status}",
                        "member": pair[1],
                        "status": status,
                        "claimed_ms": e.time_ms,
                        "reason": why,
                        "used_ms": at if at < INF else None,
                    }
                )
                if at == INF:
                    continue  # no time the observations allow: the reads alone speak
            raw[pair].append((at, e.index, status, at - res, at + res, True))
    views: dict[tuple[str, str], _Timeline] = {}
    for pair, observations in raw.items():
        observations.sort(key=lambda o: (o[0], o[1]))
        line = _Timeline()
        for t, _, status, earliest, latest, from_feed in observations:
            line.by_status[status].append(len(line.times))
            line.times.append(t)
            line.statuses.append(status)
            line.earliest.append(earliest)
            line.latest.append(latest)
            line.from_feed.append(from_feed)
        views[pair] = line
    return views, violations


def _event_contradiction(
    event: Entry,
    status: str,
    res: float,
    next_change: float,
    reads: Sequence[tuple[float, float, str]],
) -> tuple[str, float] | None:
    """Why the harness's own observations rule out ``event``'s time, and the earliest
    time they allow (``inf``: none before the poll or the feed's next change); or None."""
    polled = event.args.get("polled_ms")
    if isinstance(polled, int | float) and event.time_ms > float(polled) + res:
        return f"stamped after the harness read it at {float(polled):.0f}", float(polled)
    seen = event.args.get("observed_after_ms")
    if isinstance(seen, int | float) and event.time_ms < float(seen) - res:
        return f"stamped before the harness saw it happen at {float(seen):.0f}", float(seen)
    stale = _CONTRADICTS.get(status, ())
    if not stale:
        return None
    why, earliest = "", -INF
    i = bisect_left(reads, (event.time_ms + res, -INF, ""))
    for invoked, completed, shown in reads[i:]:
        if invoked > next_change:
            break
        if completed <= next_change and shown in stale:
            if not why:
                why = f"a read invoked at {invoked:.0f}, after the stamp, still showed {shown}"
            earliest = completed
    if not why:
        return None
    limit = min(next_change, float(polled) if isinstance(polled, int | float) else INF)
    return why, earliest if earliest < limit else INF


def _deliveries(
    history: Sequence[Entry], reads: Sequence[_Op], sends: Sequence[_Op]
) -> tuple[_Deliveries, list[dict[str, Any]]]:
    """Per broadcast id and member, when it received the broadcast; and every clock
    violation found on the way.

    A node may say when it received a broadcast (``at_ms`` in ``GET /v1/broadcasts`` or
    its event feed), but that time is accepted only inside what the harness saw: after
    the broadcast call began and after the last read of that node that did not list it
    (invoked), before the first read that did list it (completed) and before the event
    poll that returned it, each give or take the node clock's resolution. A stamp
    outside that window is a clock violation: it is reported, and the time the harness
    observed (the first listing read's completion) is used instead.
    """
    claimed: dict[tuple[str, str], float] = {}
    polled: dict[tuple[str, str], float] = {}
    after: dict[tuple[str, str], float] = {}  # a harness that watched it happen (simulator)
    looked: dict[str, float] = {}  # per node, the last time the harness asked it
    stamps: dict[str, list[float]] = defaultdict(list)

    def claim(bid: Any, node: str, t: float) -> None:
        key = (str(bid), node)
        stamps[node].append(t)
        if key not in claimed or t < claimed[key]:
            claimed[key] = t

    for e in history:
        if e.type == "event" and e.op == "broadcast" and e.node is not None:
            if e.args.get("id") is None:
                continue
            claim(e.args["id"], e.node, e.time_ms)
            key = (str(e.args["id"]), e.node)
            at = e.args.get("polled_ms")
            if isinstance(at, int | float):
                polled[key] = min(polled.get(key, INF), float(at))
                looked[e.node] = max(looked.get(e.node, -INF), float(at))
            at = e.args.get("observed_after_ms")
            if isinstance(at, int | float):
                after[key] = max(after.get(key, -INF), float(at))
    seen_by: dict[tuple[str, str], float] = {}  # first listing read's completion
    by_node: dict[str, list[_Op]] = defaultdict(list)
    for read in reads:
        if read.outcome != "ok" or read.node is None or not isinstance(read.result, Mapping):
            continue
        by_node[read.node].append(read)
        for item in read.result.get("received") or []:
            bid = item.get("id")
            if bid is None:
                continue
            key = (str(bid), read.node)
            seen_by[key] = min(seen_by.get(key, INF), read.completed)
            at = item.get("at_ms")
            if isinstance(at, int | float):
                claim(bid, read.node, float(at))
    sent = {
        str(op.args["id"]): op.invoked
        for op in sends
        if op.args.get("id") is not None and op.outcome != "fail"
    }
    out: dict[str, dict[str, float]] = defaultdict(dict)
    unseen: dict[tuple[str, str], float] = {}
    trusted: set[tuple[str, str]] = set()
    violations: list[dict[str, Any]] = []
    resolution = {node: clock_resolution(times) for node, times in stamps.items()}
    for node, node_reads in by_node.items():
        looked[node] = max(looked.get(node, -INF), max(r.invoked for r in node_reads))
    # Per node, its reads by completion with the running maximum of their invocations: the
    # reads before the first that listed a broadcast are the ones that did not.
    ends: dict[str, list[float]] = {}
    latest_start: dict[str, list[float]] = {}
    for node, node_reads in by_node.items():
        node_reads.sort(key=lambda r: r.completed)
        ends[node] = [r.completed for r in node_reads]
        running, acc = -INF, []
        for r in node_reads:
            running = max(running, r.invoked)
            acc.append(running)
        latest_start[node] = acc
    for key in set(seen_by) | set(claimed):
        bid, node = key
        upper = min(seen_by.get(key, INF), polled.get(key, INF))
        lower = max(sent.get(bid, -INF), after.get(key, -INF))
        before = bisect_left(ends.get(node, []), seen_by.get(key, INF))
        if before:
            lower = max(lower, latest_start[node][before - 1])
            unseen[key] = latest_start[node][before - 1]
        if key not in claimed:
            out[bid][node] = upper
            continue
        res = resolution.get(node, 1.0)
        at = claimed[key]
        if lower - res <= at <= upper + res:
            out[bid][node] = at
            trusted.add(key)
            continue
        observed = upper if upper < INF else max(at, lower)
        violations.append(
            {
                "node": node,
                "kind": "broadcast",
                "what": f"receipt of broadcast {bid}",
                "broadcast": bid,
                "claimed_ms": at,
                "window_ms": [lower, upper],
                "used_ms": observed,
                "reason": "stamped before the harness's last read without it"
                if at < lower - res
                else "stamped after the harness first saw it",
            }
        )
        out[bid][node] = observed
    return _Deliveries(dict(out), unseen, trusted, looked), violations


@dataclass
class _Deliveries:
    """When each member received each broadcast (``at``), and how sure that is: a time
    the harness only observed (a read's completion) is an upper bound, and the member
    certainly had not received it when ``unseen`` (its last read without it) began."""

    at: dict[str, dict[str, float]]
    unseen: dict[tuple[str, str], float]
    trusted: set[tuple[str, str]]  # the node's own stamp, inside the observed window
    looked: dict[str, float]  # per node, the last time the harness asked it

    def certainly_late(self, bid: str, node: str, deadline: float) -> bool:
        """Whether a receipt measured after ``deadline`` certainly came after it."""
        key = (bid, node)
        return key in self.trusted or self.unseen.get(key, -INF) >= deadline

    def asked_after(self, node: str, t: float) -> bool:
        """Whether the harness asked ``node`` for its broadcasts (read or event poll)
        after ``t``: without that, a missing receipt is not evidence of a miss."""
        return self.looked.get(node, -INF) >= t


# --------------------------------------------------------------------------- plumbing


@dataclass
class _Tally:
    """Latencies of the pairs a checker judged, and what it could not judge."""

    bound: float
    worst: float | None = None
    worst_detail: dict[str, Any] | None = None
    late: list[dict[str, Any]] = field(default_factory=list)
    missing: list[dict[str, Any]] = field(default_factory=list)
    checked: int = 0
    undetermined: int = 0
    excluded: int = 0

    def observe(self, latency: float, detail: dict[str, Any]) -> None:
        self.checked += 1
        latency = max(0.0, latency)
        if self.worst is None or latency > self.worst:
            self.worst, self.worst_detail = latency, {**detail, "latency_ms": round(latency, 1)}
        if latency > self.bound:
            self.late.append({**detail, "latency_ms": round(latency, 1)})

    def never(self, at_least: float, detail: dict[str, Any]) -> None:
        """Not seen although the deadline passed: ``at_least`` is a lower bound."""
        self.checked += 1
        at_least = max(at_least, self.bound)
        self.missing.append({**detail, "at_least_ms": round(at_least, 1)})
        if self.worst is None or at_least > self.worst:
            self.worst = at_least
            self.worst_detail = {**detail, "never": True, "at_least_ms": round(at_least, 1)}

    @property
    def failed(self) -> bool:
        return bool(self.late or self.missing)

    def details(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "checked": self.checked,
            "undetermined": self.undetermined,
            "excluded_partitioned": self.excluded,
        }
        if self.worst_detail is not None:
            out["worst"] = self.worst_detail
        if self.missing:
            out["never"] = self.missing[:_EVIDENCE_LIMIT]
            out["never_count"] = len(self.missing)
        if self.late:
            out["late"] = sorted(self.late, key=lambda d: -d["latency_ms"])[:_EVIDENCE_LIMIT]
            out["late_count"] = len(self.late)
        return out


def _verdict(
    requirement: Requirement,
    status: str,
    measured: float | None,
    bound: float | None,
    evidence: str,
    details: Mapping[str, Any] | None = None,
) -> Verdict:
    return Verdict(
        id=requirement.id,
        level=requirement.level,
        title=requirement.title,
        status=status,
        measured=None if measured is None else round(float(measured), 3),
        bound=bound,
        unit=requirement.unit,
        evidence=evidence,
        details=dict(details or {}),
        scenario=requirement.scenario,
    )


def _bound_of(requirement: Requirement, params: Mapping[str, float]) -> float:
    return evaluate(requirement.bound, {**params, **requirement.constants})


def _not_claimed(index: _Index, requirement: Requirement) -> str | None:
    """Why the run's implementation does not claim ``requirement``, or None when it does
    (or the history cannot tell: no capabilities in its meta)."""
    if index.capabilities is not None and requirement.capability not in index.capabilities:
        return f"the implementation does not declare the {requirement.capability!r} capability"
    policy, declared = requirement.policy, index.policies
    if policy is not None and declared is not None and policy not in declared:
        return f"the implementation does not declare the {policy!r} conflict policy"
    return None


def _capability_ops(
    index: _Index, capability: str, names: Iterable[str] | None = None
) -> list[_Op]:
    wanted = _CAPABILITY_OPS.get(capability, ()) if names is None else tuple(names)
    return [op for name in wanted for op in index.ops.get(name, [])]


def _unimplemented(index: _Index, capability: str) -> str | None:
    """Why a declared ``capability`` is a contract violation (every call of it answered
    501), or None."""
    ops = _capability_ops(index, capability)
    if (
        ops
        and all(op.outcome == "fail" for op in ops)
        and any(_answered_501(op) for op in ops)
    ):
        return (
            f"contract violation: the {capability!r} capability is declared, but every one "
            f"of its {len(ops)} calls answered 501 (not implemented)"
        )
    return None


def _answered_501(op: _Op) -> bool:
    """Whether a call was refused as not implemented (HTTP 501, or the contract's
    ``not_implemented`` error code when the status was not recorded)."""
    result = op.result if isinstance(op.result, Mapping) else {}
    return result.get("status") == 501 or result.get("error") == "not_implemented"


def _reads_failed(index: _Index, capability: str) -> str | None:
    """Why nothing of ``capability`` could be judged because its reads failed: reads were
    made and none answered, or None."""
    reads = _capability_ops(index, capability, _CAPABILITY_READS.get(capability, ()))
    if reads and not any(op.outcome == "ok" for op in reads):
        outcomes = Counter(op.outcome for op in reads)
        shown = ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items()))
        return f"every one of the {len(reads)} {capability} reads failed ({shown})"
    return None


_Body = Callable[[_Index, Requirement, float], Verdict]


def _checker(body: _Body) -> Checker:
    """Turn ``body(index, requirement, bound)`` into the public checker signature.

    Around the body: a requirement the implementation does not claim is ``not-claimed``;
    a declared capability that answered 501 to every call fails (the contract says a
    declared capability is served); and a requirement the body could not exercise is
    ``error`` rather than ``untested`` when every read it needed failed.
    """

    @wraps(body)
    def check(
        history: Sequence[Entry], requirement: Requirement, params: Mapping[str, float]
    ) -> Verdict:
        index = _index(history)
        bound = _bound_of(requirement, params)
        why = _not_claimed(index, requirement)
        if why is not None:
            return _verdict(requirement, "not-claimed", None, bound, why)
        violation = _unimplemented(index, requirement.capability)
        if violation is not None:
            return _verdict(requirement, "fail", None, bound, violation)
        verdict = body(index, requirement, bound)
        if verdict.status == "untested":
            failed = _reads_failed(index, requirement.capability)
            if failed is not None:
                text = f"{failed}: the harness could not judge ({verdict.evidence})"
                return replace(verdict, status="error", evidence=text)
        lagged = _host_lagged(index, requirement) if verdict.status == "fail" else None
        if lagged is not None:
            text = f"inconclusive: {lagged}; the failure was: {verdict.evidence}"
            return replace(verdict, status="error", evidence=text)
        kinds = _CLOCK_KINDS.get(requirement.capability, ())
        if verdict.unit == "ms" and kinds:
            seen = [v for v in index.clock_violations if v.get("kind") in kinds]
            return with_clock_violations(verdict, seen)
        return verdict

    return check


def _host_lagged(index: _Index, requirement: Requirement) -> str | None:
    """Why a timing failure says nothing about the implementation (the harness's host
    fell behind by more than the probe timeout during the run), or None. Requirements
    about timing are the timed ones and every failure-detection one; what a node stores
    does not depend on how promptly the harness ran, so those failures stand."""
    if requirement.unit != "ms" and requirement.capability != "failure-detection":
        return None
    episodes = index.phase_args.get("host-lag") or []
    lags = [float(a.get("lag_ms", 0)) for a in episodes]
    if not lags:
        return None
    threshold = episodes[0].get("threshold_ms")
    return (
        f"the harness's host was overloaded ({len(lags)} scheduling stall(s) beyond the "
        f"probe timeout of {threshold} ms, the worst {max(lags):.0f} ms), so this run "
        "cannot judge timing; rerun on a less loaded machine"
    )


# Which node-stamped times a timed requirement of a capability is measured with.
_CLOCK_KINDS = {
    "membership": ("member",),
    "failure-detection": ("member",),
    "leave": ("member",),
    "broadcast": ("broadcast",),
}


def _fmt(ms: float | None) -> str:
    return "n/a" if ms is None else f"{ms:.0f}"


def _timed_verdict(requirement: Requirement, tally: _Tally, what: str, nothing: str) -> Verdict:
    """The verdict of a latency requirement from its tally."""
    details = tally.details()
    if tally.checked == 0:
        why = nothing
        if tally.undetermined or tally.excluded:
            why += (
                f" ({tally.undetermined} undetermined: history ended or a side was killed "
                f"before the deadline; {tally.excluded} excluded by partitions)"
            )
        return _verdict(requirement, "untested", None, tally.bound, why, details)
    worst = tally.worst_detail or {}
    if tally.missing:
        first = tally.missing[0]
        text = (
            f"{len(tally.missing)} of {tally.checked} {what} never happened, e.g. "
            f"{_describe(first)} (after {_fmt(first['at_least_ms'])} ms, bound "
            f"{_fmt(tally.bound)} ms)"
        )
        return _verdict(requirement, "fail", tally.worst, tally.bound, text, details)
    if tally.late:
        text = (
            f"{len(tally.late)} of {tally.checked} {what} exceeded the bound: worst "
            f"{_describe(worst)} after {_fmt(tally.worst)} ms > {_fmt(tally.bound)} ms"
        )
        return _verdict(requirement, "fail", tally.worst, tally.bound, text, details)
    text = f"all {tally.checked} {what} within bound; worst {_describe(worst)} after "
    text += f"{_fmt(tally.worst)} ms <= {_fmt(tally.bound)} ms"
    return _verdict(requirement, "pass", tally.worst, tally.bound, text, details)


def _describe(detail: Mapping[str, Any]) -> str:
    if "broadcast" in detail:
        return f"broadcast {detail['broadcast']!r} at {detail.get('member')}"
    if "killed" in detail:
        return f"{detail.get('observer')} marking {detail['killed']} dead"
    if "observer" in detail and "member" in detail:
        return f"{detail['observer']} seeing {detail['member']} alive"
    if "kv" in detail:
        return "kv digests equal"
    return json.dumps(detail, sort_keys=True, default=str)


# --------------------------------------------------------------------------- checkers


def _in_time(seen: float | None, deadline: float) -> bool:
    """Seen by the deadline: good evidence whatever partitions happened meanwhile."""
    return seen is not None and seen <= deadline


@_checker
def check_member_join(index: _Index, requirement: Requirement, bound: float) -> Verdict:
    """MEM-JOIN: each member sees each other alive soon after both are ready.

    Measured from the later of the two becoming ready: a member cannot be expected to
    know a node before it exists itself.
    """
    tally = _Tally(bound)
    lives = [life for node in index.nodes for life in index.lives.get(node, [])]
    explicit = [life for life in lives if not life.implicit]
    if not explicit:
        return _verdict(requirement, "untested", None, bound, "the history has no node start")
    for x in explicit:
        for y in lives:
            if y.node == x.node:
                continue
            ref = max(x.ready, y.ready)
            stop = min(x.end, y.end)
            if ref >= stop:
                continue  # the two were never up together
            deadline = ref + bound
            detail = {"observer": y.node, "member": x.node, "ready_ms": ref}
            line = index.timeline(y.node, x.node)
            seen = line.first(("alive",), max(x.launched, y.launched))
            if seen is not None and seen >= y.end:
                seen = None
            if not _in_time(seen, deadline) and index.separated(x.node, y.node, ref, deadline):
                tally.excluded += 1
                continue
            if seen is not None:
                tally.observe(seen - ref, {**detail, "seen_ms": seen})
            elif stop < deadline or index.end_ms < deadline:
                tally.undetermined += 1
            else:
                tally.never(min(index.end_ms, stop) - ref, detail)
    return _timed_verdict(
        requirement, tally, "member pairs", "no pair of members was up together long enough"
    )


@_checker
def check_failure_detection(index: _Index, requirement: Requirement, bound: float) -> Verdict:
    """FD-DETECT: every member still up marks a SIGKILLed node dead within the bound."""
    return _detection(index, requirement, bound)


@_checker
def check_detection_speed(index: _Index, requirement: Requirement, bound: float) -> Verdict:
    """FD-DETECT-EXPECTED: FD-DETECT's figure against what SWIM leads one to expect (a
    SHOULD: slow, not broken)."""
    return _detection(index, requirement, bound)


def _detection(index: _Index, requirement: Requirement, bound: float) -> Verdict:
    tally = _Tally(bound)
    if not index.kills:
        return _verdict(requirement, "untested", None, bound, "no kill fault was applied")
    for kill in index.kills:
        victim, t_kill = str(kill.node), kill.time_ms
        life = next(
            (
                lf
                for lf in index.lives.get(victim, [])
                if lf.end == t_kill and lf.end_cause == "kill"
            ),
            None,
        )
        if life is None:
            continue  # killed a node that was not up: nothing to detect
        deadline = t_kill + bound
        restart = min(
            (
                lf.launched
                for lf in index.lives.get(victim, [])
                if lf.launched >= t_kill and (lf.end, lf.end_cause) != (t_kill, "kill")
            ),
            default=INF,
        )
        others = [n for n in index.nodes if n != victim and index.live_at(n, t_kill)]
        for observer in others:
            obs_life = index.life_at(observer, t_kill)
            assert obs_life is not None
            detail = {"observer": observer, "killed": victim, "kill_ms": t_kill}
            line = index.timeline(observer, victim)
            if line.status_at(t_kill) == "dead":
                tally.observe(0.0, {**detail, "seen_ms": t_kill, "already_dead": True})
                continue
            seen = line.first(_DEAD_STATUSES, t_kill)
            cutoff = min(obs_life.end, restart)
            if seen is not None and seen >= cutoff:
                seen = None
            if not _in_time(seen, deadline) and any(
                index.separated(observer, o, t_kill, deadline) for o in others
            ):
                tally.excluded += 1
                continue
            if seen is not None and seen > deadline and not line.certainly_not_yet(
                _DEAD_STATUSES, t_kill, deadline
            ):
                tally.undetermined += 1  # first seen late, but maybe marked dead in time
            elif seen is not None:
                tally.observe(seen - t_kill, {**detail, "seen_ms": seen})
            elif cutoff < deadline or index.end_ms < deadline:
                tally.undetermined += 1
            else:
                tally.never(min(index.end_ms, cutoff) - t_kill, detail)
    return _timed_verdict(
        requirement, tally, "detections", "no member stayed up through a detection window"
    )


@_checker
def check_no_false_positive(index: _Index, requirement: Requirement, bound: float) -> Verdict:
    """FD-NO-FALSE-POSITIVE: in a quiet phase, nobody live is suspected or declared dead.

    Each change of a pair's reported status into ``suspect`` or ``dead`` inside a quiet
    window counts once; a mark still standing when a window opens counts too.
    """
    windows = sorted(index.phases.get("quiet", []))
    if not windows:
        why = "the history has no quiet phase"
        return _verdict(requirement, "untested", None, bound, why)
    starts = [w[0] for w in windows]

    def window_of(t: float) -> int | None:
        i = bisect_right(starts, t) - 1
        return i if i >= 0 and t <= windows[i][1] else None

    incidents: list[dict[str, Any]] = []
    observed = 0
    for (observer, subject), line in index.views.items():
        last: tuple[int | None, str | None] = (None, None)
        for k, (t, status) in enumerate(zip(line.times, line.statuses, strict=True)):
            w = window_of(t)
            if w is not None:
                observed += 1
                bad = status in ("suspect", "dead")
                if (
                    bad
                    and (w, status) != last
                    and line.certainly_after(k, windows[w][0])
                    and index.live_through(observer, line.earliest[k], t)
                    and index.live_through(subject, line.earliest[k], t)
                ):
                    incidents.append(
                        {"observer": observer, "member": subject, "status": status, "at_ms": t}
                    )
            last = (w, status)
    quiet_ms = sum(end - start for start, end in windows)
    if observed == 0 and index.member_events == 0:
        # Without an event feed, silence proves nothing: some view must have been read.
        return _verdict(
            requirement,
            "untested",
            None,
            bound,
            "no member view was read during the quiet phase and no node reported events",
        )
    details: dict[str, Any] = {
        "quiet_windows": [list(w) for w in windows],
        "observations": observed,
        "false_positives": sorted(incidents, key=lambda d: d["at_ms"])[:_EVIDENCE_LIMIT],
    }
    count = len(incidents)
    if count > bound:
        first = min(incidents, key=lambda d: d["at_ms"])
        text = (
            f"{count} false positive(s) in {quiet_ms:.0f} ms of quiet: first "
            f"{first['observer']} reported live {first['member']} {first['status']} "
            f"at {first['at_ms']:.0f}"
        )
        return _verdict(requirement, "fail", count, bound, text, details)
    text = (
        f"no live member suspected in {quiet_ms:.0f} ms of quiet "
        f"({observed} observations, {index.member_events} member events in the run)"
    )
    return _verdict(requirement, "pass", count, bound, text, details)


@_checker
def check_broadcast_delivery(index: _Index, requirement: Requirement, bound: float) -> Verdict:
    """BCAST-DELIVERY: every accepted broadcast reaches every member up through its window.

    An ``info`` broadcast (outcome unknown) is held to the requirement only once some
    node received it; one whose origin dies before the deadline only if another did.
    """
    tally = _Tally(bound)
    broadcasts = index.ops.get("broadcast", [])
    if not broadcasts:
        return _verdict(requirement, "untested", None, bound, "no broadcast was sent")
    for op in broadcasts:
        bid, origin = op.args.get("id"), op.node
        if bid is None or origin is None or op.outcome == "fail":
            continue
        received = index.deliveries.get(str(bid), {})
        if op.outcome != "ok" and not received:
            continue  # maybe never happened
        t0, deadline = op.invoked, op.invoked + bound
        origin_life = next(
            (lf for lf in index.lives.get(origin, ()) if lf.ready <= t0 <= lf.end), None
        )
        if (
            origin_life is not None
            and origin_life.end < deadline
            and not (set(received) - {origin})
        ):
            tally.undetermined += 1
            continue
        for member in index.nodes:
            life = index.life_at(member, t0)
            if member == origin or life is None:
                continue
            detail = {"broadcast": str(bid), "origin": origin, "member": member, "sent_ms": t0}
            at = received.get(member)
            if at is not None and at >= life.end:
                at = None
            if not _in_time(at, deadline) and index.separated(
                origin, member, t0, deadline, directed=True
            ):
                tally.excluded += 1
                continue
            if at is not None and at > deadline and not index.delivery.certainly_late(
                str(bid), member, deadline
            ):
                tally.undetermined += 1  # first seen late, but maybe received in time
            elif at is not None:
                tally.observe(at - t0, {**detail, "received_ms": at})
            elif (
                life.end < deadline
                or index.end_ms < deadline
                or not index.delivery.asked_after(member, deadline)
            ):
                tally.undetermined += 1
            else:
                tally.never(min(index.end_ms, life.end) - t0, detail)
    return _timed_verdict(
        requirement, tally, "deliveries", "no broadcast could be followed to its deadline"
    )


def with_clock_violations(verdict: Verdict, violations: Sequence[Mapping[str, Any]]) -> Verdict:
    """``verdict`` with the node-stamped times its data rejected, stated in its evidence
    and listed in its details (the harness's observations were judged instead)."""
    if not violations:
        return verdict
    first = violations[0]
    note = (
        f"; {len(violations)} clock violation(s): node-stamped times outside what "
        f"the harness observed, judged at the observed time instead (e.g. {first['node']} "
        f"stamped its {first['what']} at {first['claimed_ms']:.0f}, {first['reason']})"
    )
    details = {**verdict.details, "clock_violations": list(violations[:_EVIDENCE_LIMIT])}
    return replace(verdict, evidence=verdict.evidence + note, details=details)


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class _KvRead:
    node: str
    at: float
    digest: Any
    entries: Mapping[str, Any]


def _kv_reads(index: _Index, nodes: Iterable[str], t0: float, t1: float = INF) -> list[_KvRead]:
    """Successful kv reads by ``nodes`` begun at or after ``t0`` and done by ``t1``."""
    wanted = set(nodes)
    out: list[_KvRead] = []
    for op in index.ops.get("kv", []):
        if op.outcome != "ok" or op.node not in wanted or not isinstance(op.result, Mapping):
            continue
        if op.invoked >= t0 and op.completed <= t1:
            entries = op.result.get("entries") or {}
            out.append(_KvRead(str(op.node), op.completed, op.result.get("digest"), entries))
    out.sort(key=lambda r: r.at)
    return out


def _convergence(
    reads: Sequence[_KvRead], required: set[str]
) -> tuple[float | None, dict[str, _KvRead]]:
    """When the latest digests of all ``required`` nodes became equal for good (if ever)."""
    latest: dict[str, _KvRead] = {}
    counts: Counter[str] = Counter()
    converged: float | None = None
    for read in reads:
        digest = _canon(read.digest)
        previous = latest.get(read.node)
        if previous is not None:
            counts[_canon(previous.digest)] -= 1
            if counts[_canon(previous.digest)] == 0:
                del counts[_canon(previous.digest)]
        latest[read.node] = read
        counts[digest] += 1
        if len(latest) == len(required) and len(counts) == 1:
            if converged is None:
                converged = read.at
        else:
            converged = None
    return converged, latest


def _divergence(latest: Mapping[str, _KvRead], limit: int = 5) -> list[dict[str, Any]]:
    """The keys whose values differ between nodes, with each node's values."""
    keys: set[str] = set()
    for read in latest.values():
        keys.update(str(k) for k in read.entries)
    out: list[dict[str, Any]] = []
    for key in sorted(keys):
        per_node = {node: _values(read.entries, key) for node, read in sorted(latest.items())}
        if len({_canon(v) for v in per_node.values()}) > 1:
            out.append({"key": key, "values": per_node})
            if len(out) >= limit:
                break
    return out


def _values(entries: Mapping[str, Any], key: str) -> list[Any] | None:
    entry = entries.get(key)
    if entry is None:
        return None
    values = entry.get("values") if isinstance(entry, Mapping) else entry
    if not isinstance(values, list):
        values = [values]
    return sorted(values, key=_canon)


def _settle_point(index: _Index) -> tuple[float | None, str | None]:
    """From when the kv state must converge: writes stopped and no partition still open."""
    stop = index.writes_stopped()
    if stop is None:
        return None, "no key/value write was made"
    # No state can converge across a cut: convergence is owed from the heal of a partition
    # open at the end of the writes, or opened after it before the state had converged.
    for cut in sorted(index.cuts, key=lambda c: c.start):
        if cut.end <= stop:
            continue
        if cut.start > stop:
            up = {n for n in index.nodes if (lf := index.life_at(n, stop)) and lf.end > cut.start}
            if up and _convergence(_kv_reads(index, up, stop, cut.start), up)[0] is not None:
                break  # converged before this partition: it changes nothing
        if cut.end == INF:
            return None, "a partition was still open after writes stopped and never healed"
        stop = cut.end
    return stop, None


@_checker
def check_kv_convergence(index: _Index, requirement: Requirement, bound: float) -> Verdict:
    """KV-CONVERGENCE: once writes stop, every surviving member ends with one digest."""
    t_stop, why = _settle_point(index)
    if t_stop is None:
        return _verdict(requirement, "untested", None, bound, str(why))
    required = {
        n
        for n in index.nodes
        if index.live_at(n, t_stop) and index.lives[n] and index.lives[n][-1].end == INF
    }
    reads = _kv_reads(index, required, t_stop)
    if not required or not reads:
        return _verdict(
            requirement,
            "untested",
            None,
            bound,
            "no kv read of a surviving member after writes stopped",
        )
    converged, latest = _convergence(reads, required)
    details: dict[str, Any] = {"writes_stopped_ms": t_stop, "members": sorted(required)}
    if converged is not None:
        measured = max(0.0, converged - t_stop)
        details["converged_ms"] = converged
        details["digest"] = latest[next(iter(required))].digest
        status = "pass" if measured <= bound else "fail"
        relation = "<=" if status == "pass" else ">"
        text = (
            f"{len(required)} members' digests equal {measured:.0f} ms after writes stopped "
            f"({relation} {bound:.0f} ms)"
        )
        return _verdict(requirement, status, measured, bound, text, details)
    observed_for = index.end_ms - t_stop
    unread = sorted(required - set(latest))
    details["digests"] = {node: read.digest for node, read in sorted(latest.items())}
    details["diverging_keys"] = _divergence(latest)
    if unread:
        details["never_read"] = unread
    if observed_for < bound:
        details["inconclusive"] = True
        return _verdict(
            requirement,
            "untested",
            None,
            bound,
            f"inconclusive: not yet converged when the history ended {observed_for:.0f} ms "
            f"after writes stopped, before the {bound:.0f} ms bound",
            details,
        )
    if unread:
        text = f"no successful kv read from {', '.join(unread)} after writes stopped"
    else:
        distinct = len({_canon(r.digest) for r in latest.values()})
        text = (
            f"digests never converged: {distinct} distinct digests among {len(latest)} "
            f"members {observed_for:.0f} ms after writes stopped"
        )
        if details["diverging_keys"]:
            text += f"; e.g. key {details['diverging_keys'][0]['key']!r} differs"
    return _verdict(requirement, "fail", max(observed_for, bound), bound, text, details)


def writer_died_early(index: _Index, node: str, completed: float, grace_ms: float) -> bool:
    """The acknowledging node was killed before one gossip round could carry the write
    off it: without durable storage that write may be gone, so it counts as maybe."""
    return any(
        life.ready <= completed <= life.end < completed + grace_ms
        for life in index.lives.get(node, ())
    )


def _unshipped_as_maybe(index: _Index, write: Write, grace_ms: float) -> Write:
    if write.happened and writer_died_early(index, write.node, write.completed, grace_ms):
        return replace(write, outcome="info")
    return write


@_checker
def check_partition_heal(index: _Index, requirement: Requirement, bound: float) -> Verdict:
    """PARTITION-HEAL: after a heal, views settle on alive for good and kv digests agree.

    A pair counts as settled from the last time its view turned alive with no later
    non-alive report before the next partition, so flapping after a heal is caught.
    """
    tally = _Tally(bound)
    heals = [h for h in index.heals if any(c.end == h for c in index.cuts)]
    if not heals:
        return _verdict(
            requirement, "untested", None, bound, "no partition was applied and healed"
        )
    kv_checked = index.capabilities is None or "kv" in index.capabilities
    partition_starts = sorted(c.start for c in index.cuts)
    kv_notes: list[dict[str, Any]] = []
    for t_heal in heals:
        deadline = t_heal + bound
        i = bisect_right(partition_starts, t_heal)
        window_end = partition_starts[i] if i < len(partition_starts) else index.end_ms
        window_end = min(window_end, index.end_ms)
        members = [
            n
            for n in index.nodes
            if (life := index.life_at(n, t_heal)) is not None and life.end >= deadline
        ]
        for observer in members:
            for subject in members:
                if observer == subject:
                    continue
                detail = {"observer": observer, "member": subject, "heal_ms": t_heal}
                settled = _settled_alive(index.timeline(observer, subject), t_heal, window_end)
                if settled is not None:
                    tally.observe(settled - t_heal, {**detail, "seen_ms": settled})
                elif window_end < deadline:
                    tally.undetermined += 1
                else:
                    tally.never(window_end - t_heal, detail)
        if not kv_checked:
            continue
        note = _heal_kv(index, members, t_heal, window_end, deadline, tally)
        if note:
            kv_notes.append(note)
    verdict = _timed_verdict(
        requirement, tally, "post-heal checks", "no heal was followed long enough"
    )
    if kv_notes:
        verdict = replace(verdict, details={**verdict.details, "kv": kv_notes})
    return verdict


def _settled_alive(line: _Timeline, t_from: float, window_end: float) -> float | None:
    """When ``line`` turned ``alive`` for good in ``(t_from, window_end]`` (``t_from``
    itself when it already stood alive then), or None when it did not stay alive.

    A non-alive report undoes the stretch only when it was certainly served after the
    latest alive one; one that may have been served before it (their intervals overlap)
    contradicts nothing, but the stretch is then known to hold only from that latest
    alive report on.
    """
    before = bisect_right(line.times, t_from) - 1
    first: int | None = None  # the alive report that began the stretch
    latest: int | None = None  # the latest alive report of the stretch
    settled: float | None = None
    if before >= 0 and line.statuses[before] == "alive":
        first = latest = before
        settled = t_from
    for i in line.span(t_from, window_end):
        if line.statuses[i] == "alive":
            if settled is None:
                first, settled = i, line.times[i]
            latest = i
        elif latest is None or first is None or line.served_after(i, latest):
            first = latest = settled = None
        elif line.served_after(i, first):
            settled = max(t_from, line.times[latest])
    return settled


def _heal_kv(
    index: _Index,
    members: Sequence[str],
    t_heal: float,
    window_end: float,
    deadline: float,
    tally: _Tally,
) -> dict[str, Any] | None:
    """Judge kv agreement after one heal, when no write muddies it."""
    if any(t_heal <= p.invoked <= window_end for p in index.ops.get("put", [])):
        return {"heal_ms": t_heal, "skipped": "writes continued after the heal"}
    required = set(members)
    reads = _kv_reads(index, required, t_heal, window_end)
    if not reads or {r.node for r in reads} != required:
        return None  # kv not read from everyone after this heal: membership alone is judged
    converged, latest = _convergence(reads, required)
    detail: dict[str, Any] = {"kv": True, "heal_ms": t_heal}
    if converged is not None:
        tally.observe(converged - t_heal, {**detail, "converged_ms": converged})
        return None
    if window_end < deadline:
        tally.undetermined += 1
        return None
    tally.never(window_end - t_heal, {**detail, "diverging_keys": _divergence(latest, 3)})
    return {"heal_ms": t_heal, "digests": {n: r.digest for n, r in sorted(latest.items())}}
