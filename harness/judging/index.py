"""The history index: a run's history digested once into the shapes the checkers and
the reports read (lives of every node, operations paired with their completions, each
observer's timeline of each member, deliveries of broadcasts, partitions and phases).

What it takes from the history, and how:

* Times compared are the history's ``time_ms``; node-side observations (``event``
  entries, ``at_ms`` of received broadcasts) carry the node's own clock, which is the
  harness host's clock, so they compare with harness times directly.
* A read is an interval ``[invoked, completed]``, never a point: latencies are measured
  to its completion (an upper bound), and it contradicts another observation (a
  regression: dead back to suspect, alive undone after settling, a suspicion inside a
  window) only when it was certainly served after it, invoked no sooner than the other
  could have happened; event times count to their node clock's resolution
  (:class:`Timeline`).
* A node is live at ``t`` when a ``start`` of it completed ``ok`` before ``t`` and no
  ``kill``/``restart``/``stop`` fault or completed ``leave`` ended that life since.
* Every node-stamped time is bounded on both sides by what the harness observed: no
  later than the poll or read that first showed it, no sooner than a read that
  certainly followed it and did not show it. A read the node failed to answer (an error,
  a timeout) bounds nothing in its favour: it counts as one that did not show it, unless
  the harness itself kept the node from answering (a ``pause``). A stamp outside those
  bounds is a clock violation: it is listed (``clock_violations``) and the latest time
  the observations allow is used instead.
* Building is ``O(m log m)`` for ``m`` entries; every query after that is proportional to
  what it asks, so nothing scans the history per pair.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from gossipcert.harness.history import Entry
from gossipcert.harness.judging.clock import run_time

__all__ = [
    "DEAD_STATUSES",
    "DEFAULT_CLOCK_SKEW_MS",
    "INF",
    "LIFE_ENDING_FAULTS",
    "Cut",
    "Deliveries",
    "HistoryIndex",
    "Life",
    "PairedOp",
    "Timeline",
    "clock_resolution",
]

INF = math.inf

# Default allowance between node clocks and the harness's (``meta.clock_skew_ms``
# overrides it): one host's processes share a clock; NTP keeps a LAN within a few ms.
DEFAULT_CLOCK_SKEW_MS = 250.0

DEAD_STATUSES = ("dead", "absent")

# Faults after which a node process is gone until a later ``start`` completes.
# ("absent": a members read that no longer lists it also ends one.)
LIFE_ENDING_FAULTS = ("kill", "restart", "stop")


@dataclass(frozen=True)
class Life:
    """One incarnation of a node process: launched, ready, killed (or never)."""

    node: str
    launched: float
    ready: float
    end: float = INF
    implicit: bool = False  # no start op in the history: assumed up from its beginning
    end_cause: str = ""  # the fault (kill, restart) or leave that ended it


@dataclass(frozen=True)
class PairedOp:
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
class Cut:
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
class Timeline:
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
    # When the observer was asked for its members and did not answer (sorted): a gap in
    # its reads that these fall in is the node's own, not the harness's.
    failed: list[float] = field(default_factory=list)

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
        """Whether, at harness time ``t``, the observer is held not to have reported one
        of ``statuses`` yet (first reported after ``after``): that first report is the
        node's own event (its word, bounded by the polls), or some other report was
        certainly served at or after ``t``, or the observer failed a read asked at or
        after ``t`` before that first report: the harness asked, the node did not show
        it, and the gap its failure made is the node's. A first report that is only a read
        after a gap in the harness's own reads says nothing of when the change happened
        inside the gap."""
        i = self.first_index(statuses, after)
        if i is None:
            return True
        if self.from_feed[i]:
            return self.times[i] > t
        j = bisect_left(self.times, t)
        if any(self.earliest[k] >= t for k in range(j, i)):
            return True
        k = bisect_left(self.failed, t)
        return k < len(self.failed) and self.failed[k] < self.earliest[i]

    def certainly_after(self, i: int, t: float) -> bool:
        """Whether observation ``i`` was served at or after the harness time ``t``."""
        return self.earliest[i] >= t

    def span(self, start: float, end: float) -> range:
        """Positions of the observations whose ``times`` fall in ``(start, end]``."""
        return range(bisect_right(self.times, start), bisect_right(self.times, end))


@dataclass
class HistoryIndex:
    """A history digested once, in the shapes every checker and every figure needs.

    Build it with :meth:`build`; whoever needs it more than once (the checkers of a run,
    then its reports) passes the one index along instead of building another.
    """

    nodes: list[str]
    timing: Mapping[str, Any]
    capabilities: frozenset[str] | None
    conflict_policy: str | None
    policies: frozenset[str] | None
    begin_ms: float
    end_ms: float
    lives: dict[str, list[Life]]
    kills: list[Entry]
    heals: list[float]
    cuts: list[Cut]
    phases: dict[str, list[tuple[float, float]]]
    ops: dict[str, list[PairedOp]]
    views: dict[tuple[str, str], Timeline]
    # Node-stamped times the harness's own observations contradict (see _deliveries).
    clock_violations: list[dict[str, Any]]
    delivery: Deliveries
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
    intruder_ops: dict[str, list[PairedOp]] = field(default_factory=dict)
    # The history itself, for what is read straight from it (a meta field, a figure).
    entries: Sequence[Entry] = ()

    @classmethod
    def build(cls, history: Sequence[Entry]) -> HistoryIndex:
        """Digest ``history`` once: ``O(m log m)`` for ``m`` entries."""
        return _build_index(history)

    @property
    def deliveries(self) -> dict[str, dict[str, float]]:
        """Broadcast id -> node -> when it received it (see :class:`Deliveries`)."""
        return self.delivery.at

    def life_at(self, node: str, t: float) -> Life | None:
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

    def cut_open_at(self, t: float) -> Cut | None:
        for cut in self.cuts:
            if cut.start <= t < cut.end:
                return cut
        return None

    def survivors(self, t: float) -> set[str]:
        """The nodes live at ``t`` whose last life never ended: the ones whose final
        state the history holds."""
        return {
            n
            for n in self.nodes
            if self.live_at(n, t) and self.lives[n] and self.lives[n][-1].end == INF
        }

    def timeline(self, observer: str, subject: str) -> Timeline:
        return self.views.get((observer, subject)) or Timeline()


def _build_index(history: Sequence[Entry]) -> HistoryIndex:
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

    ops: dict[str, list[PairedOp]] = defaultdict(list)
    for call, inv in invokes.items():
        done = completions.get(call)
        ops[inv.op].append(
            PairedOp(
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
                PairedOp(
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
            PairedOp(inv.op, inv.node, None, inv.time_ms, "info", INF, inv.args, None, inv.index)
        )
    for op_list in ops.values():
        op_list.sort(key=lambda o: (o.invoked, o.completed))
    intruders = frozenset(
        str(op.node)
        for op in ops.get("start", [])
        if op.node is not None and (op.args.get("key") == "wrong" or op.args.get("wrong_key"))
    )
    intruder_ops: dict[str, list[PairedOp]] = defaultdict(list)
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
            if e.type == "fault" and e.op in LIFE_ENDING_FAULTS and e.node is not None
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
    return HistoryIndex(
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
        entries=history,
    )


def _phase_args(history: Sequence[Entry]) -> dict[str, list[Mapping[str, Any]]]:
    """The ``args`` of each phase's start edge, in the order of :func:`_phases`."""
    out: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for e in sorted((e for e in history if e.type == "phase"), key=lambda e: e.time_ms):
        if e.args.get("edge") == "start":
            out[e.op].append(e.args)
    return dict(out)


def _lives(
    nodes: Sequence[str], starts: Sequence[PairedOp], kills: Sequence[Entry], begin: float
) -> dict[str, list[Life]]:
    # (time, history index, kind, launched): same-time entries keep their history order,
    # so a kill logged right after a restart's start ends the new life.
    events: dict[str, list[tuple[float, int, int, float, str]]] = defaultdict(list)
    for op in starts:
        if op.outcome == "ok" and op.node is not None:
            events[op.node].append((op.completed, op.seq, 1, op.invoked, ""))
    for kill in kills:
        assert kill.node is not None
        events[kill.node].append((kill.time_ms, kill.index, 0, kill.time_ms, kill.op))
    lives: dict[str, list[Life]] = {}
    # A history without any start op (e.g. a cluster started outside the harness): every
    # node is taken as up from its beginning. Otherwise a node never started was never up.
    implicit = not any(e[2] == 1 for per_node in events.values() for e in per_node)
    for node in sorted(set(nodes) | set(events)):
        mine = sorted(events.get(node, []))
        if implicit:
            mine.insert(0, (begin, -1, 1, begin, ""))
        out: list[Life] = []
        current: Life | None = None
        for t, _, kind, launched, cause in mine:
            if kind == 1 and current is None:
                current = Life(node, launched, t, INF, implicit)
            elif kind == 0 and current is not None:
                out.append(
                    Life(node, current.launched, current.ready, t, current.implicit, cause)
                )
                current = None
        if current is not None:
            out.append(current)
        lives[node] = out
    return lives


def _cuts(history: Sequence[Entry], end: float) -> tuple[list[float], list[Cut]]:
    """Heal times, and every ``partition``/``cut`` fault as a :class:`Cut` up to the heal
    that clears it (open-ended when none does)."""
    heals: list[float] = []
    cuts: list[Cut] = []
    open_cuts: list[Cut] = []
    for e in sorted((e for e in history if e.type == "fault"), key=lambda e: e.time_ms):
        if e.op == "partition":
            groups = e.args.get("groups") or []
            group = {str(node): i for i, members in enumerate(groups) for node in members}
            open_cuts.append(Cut(e.time_ms, INF, group))
        elif e.op == "cut":
            links = frozenset(
                (str(link[0]), str(link[1]))
                for link in e.args.get("links") or []
                if isinstance(link, list | tuple) and len(link) == 2
            )
            open_cuts.append(Cut(e.time_ms, INF, {}, links))
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
# absent after the observer reported it alive, alive after it reported it suspect, or
# alive or suspect after it reported it dead or left, contradicts the event's time.
_CONTRADICTS = {
    "alive": ("absent",),
    "suspect": ("alive",),
    "dead": ("alive", "suspect"),
    "left": ("alive", "suspect"),
}


def _views(
    history: Sequence[Entry], reads: Sequence[PairedOp], nodes: Sequence[str]
) -> tuple[dict[tuple[str, str], Timeline], list[dict[str, Any]]]:
    """Per (observer, subject): member events plus members reads, in time order; and the
    events whose node-stamped time the harness's observations contradict.

    A read is the interval ``[invoked, completed]``; an event is its ``at_ms`` widened by
    the resolution of its node's clock on both sides. An event is accepted only inside
    what the harness saw (:func:`_event_contradiction`): no later than the poll that
    returned it or a read that already showed it, no sooner than a read that certainly
    followed it and still showed what it says had ended, or a read the node failed to
    answer after it and before any read showed it. A contradicted event is a clock
    violation: it counts from the latest time the observations allow (the first read
    showing it, or the poll that returned it), or not at all when none is left before the
    feed's next change.
    """
    # (time, history index, status, earliest, latest, from the node's feed)
    raw: dict[tuple[str, str], list[tuple[float, int, str, float, float, bool]]] = defaultdict(
        list
    )
    everyone = set(nodes)
    stopped = _stopped_by_harness(history)
    failed: dict[str, list[float]] = defaultdict(list)
    for read in reads:
        if read.node is None:
            continue
        if read.outcome != "ok" or not isinstance(read.result, Mapping):
            if not any(s <= read.invoked < e for s, e in stopped.get(read.node, ())):
                failed[read.node].append(read.invoked)
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
    for times in failed.values():
        times.sort()
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
    begin = min((e.time_ms for e in history), default=0.0)  # the run's start, for the text
    for pair, events in feed.items():
        res = clock_resolution(stamps[pair[0]])
        events.sort(key=lambda e: (e.time_ms, e.index))
        for i, e in enumerate(events):
            status = str(e.args["status"])
            after = events[i + 1].time_ms - res if i + 1 < len(events) else INF
            before = (
                (events[i - 1].time_ms + res, str(events[i - 1].args["status"])) if i else None
            )
            at = e.time_ms
            contradiction = _event_contradiction(
                e, status, res, before, after, by_invoked.get(pair, []), failed.get(pair[0], []),
                begin,
            )
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
    views: dict[tuple[str, str], Timeline] = {}
    for pair, observations in raw.items():
        observations.sort(key=lambda o: (o[0], o[1]))
        line = Timeline(failed=failed.get(pair[0], []))
        for t, _, status, earliest, latest, from_feed in observations:
            line.by_status[status].append(len(line.times))
            line.times.append(t)
            line.statuses.append(status)
            line.earliest.append(earliest)
            line.latest.append(latest)
            line.from_feed.append(from_feed)
        views[pair] = line
    return views, violations


def _stopped_by_harness(history: Sequence[Entry]) -> dict[str, list[tuple[float, float]]]:
    """Per node, when the harness itself kept it from answering (a ``pause`` until its
    ``resume``): a read failing then is the harness's doing, not the node's."""
    out: dict[str, list[tuple[float, float]]] = defaultdict(list)
    paused: dict[str, float] = {}
    for e in sorted((e for e in history if e.type == "fault"), key=lambda e: e.time_ms):
        if e.node is None:
            continue
        if e.op == "pause":
            paused.setdefault(e.node, e.time_ms)
        elif e.op in ("resume", "unpause", "cont") and e.node in paused:
            out[e.node].append((paused.pop(e.node), e.time_ms))
    for node, start in paused.items():
        out[node].append((start, INF))
    return dict(out)


def _event_contradiction(
    event: Entry,
    status: str,
    res: float,
    before: tuple[float, str] | None,
    next_change: float,
    reads: Sequence[tuple[float, float, str]],
    failed: Sequence[float],
    begin: float = 0.0,
) -> tuple[str, float] | None:
    """Why the harness's own observations rule out ``event``'s time, and the latest time
    they allow (``inf``: none before the feed's next change); or None.

    ``reads`` are the pair's successful reads ``(invoked, completed, shown)`` by
    invocation, ``failed`` when the observer's failed reads were invoked, ``before`` the
    feed's previous change (its stamp plus the resolution, and its status). The stamp is
    too late when the poll that returned it, or a read certainly served after the
    previous change, already showed it; too early when a read invoked after it, before
    the feed's next change and the poll, still showed what it ended, or when the node
    failed a read asked after it before anything showed it (the harness asked and saw
    nothing: a failed read bounds nothing in the node's favour)."""
    t = event.time_ms
    polled = event.args.get("polled_ms")
    upper = float(polled) if isinstance(polled, int | float) else INF
    # Reads that showed the status after the previous change could have ended it.
    shown_at = [
        (invoked, completed)
        for invoked, completed, shown in reads
        if shown == status
        and (before is None or (before[1] != status and invoked >= before[0]))
        and invoked < next_change
    ]
    if before is not None:
        late = [c for inv, c in shown_at if c < t - res]
        if late:
            shown_by = run_time(min(late), begin)
            return f"a read completed at {shown_by}, before the stamp, showed it", min(late)
    if t > upper + res:
        return f"stamped after the harness read it at {run_time(upper, begin)}", upper
    why, lower = "", -INF
    seen = event.args.get("observed_after_ms")
    if isinstance(seen, int | float) and t < float(seen) - res:
        why = f"stamped before the harness saw it happen at {run_time(float(seen), begin)}"
        lower = float(seen)
    limit = min(next_change, upper)
    stale = _CONTRADICTS.get(status, ())
    for invoked, completed, shown in reads[bisect_left(reads, (t + res, -INF, "")) :]:
        if invoked >= limit:
            break
        if completed <= next_change and shown in stale:
            if not why:
                why = (f"a read invoked at {run_time(invoked, begin)}, after the stamp, "
                       f"still showed {shown}")
            lower = max(lower, completed)
    shown_after = min((c for _, c in shown_at if c >= t - res), default=INF)
    for invoked in failed[bisect_left(failed, t + res) :]:
        if invoked >= min(limit, shown_after):
            break
        if not why:
            why = (f"the node failed a members read invoked at {run_time(invoked, begin)}, "
                   "after the stamp")
        lower = max(lower, invoked)
    if not why:
        return None
    latest = min([upper] + [c for _, c in shown_at if c >= lower])
    return why, latest if latest < next_change else INF


def _deliveries(
    history: Sequence[Entry], reads: Sequence[PairedOp], sends: Sequence[PairedOp]
) -> tuple[Deliveries, list[dict[str, Any]]]:
    """Per broadcast id and member, when it received the broadcast; and every clock
    violation found on the way.

    A node may say when it received a broadcast (``at_ms`` in ``GET /v1/broadcasts`` or
    its event feed), but that time is accepted only inside what the harness saw: after
    the broadcast call began and after the last read of that node that did not list it
    or that it failed to answer (invoked), before the first read that did list it
    (completed) and before the event poll that returned it, each give or take the node
    clock's resolution. A stamp
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
    by_node: dict[str, list[PairedOp]] = defaultdict(list)
    failed: dict[str, list[PairedOp]] = defaultdict(list)  # reads the node did not answer
    stopped = _stopped_by_harness(history)
    for read in reads:
        if read.node is None:
            continue
        if read.outcome != "ok" or not isinstance(read.result, Mapping):
            if not any(s <= read.invoked < e for s, e in stopped.get(read.node, ())):
                failed[read.node].append(read)
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
        # A read the node failed to answer before the harness saw the receipt shows it
        # no more than one that did not list it: the gap it made is the node's.
        refused = max(
            (r.invoked for r in failed.get(node, ()) if r.completed < upper), default=-INF
        )
        if refused > unseen.get(key, -INF):
            lower = max(lower, refused)
            unseen[key] = refused
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
    return Deliveries(dict(out), unseen, trusted, looked), violations


@dataclass
class Deliveries:
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
