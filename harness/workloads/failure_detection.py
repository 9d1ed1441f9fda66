"""Failure detection: every member still up marks a SIGKILLed node dead in time (against
the worst case and against SWIM's expectation), nobody live is suspected in a quiet phase
nor declared dead or dropped from a list wherever no fault touches the pair, dead stays
dead, and no false positive under latency, loss or around a paused node.

A false positive is a live member reported ``dead`` or ``absent`` (a members read that
no longer lists it): dropping a live peer silently is the same failure as declaring it
dead. ``absent`` is legitimate before the observer first reported the member alive (a
joiner not learnt yet) and after the member asked to leave. A window is judged only on
what members reads certainly served inside it showed: a node's silent event feed is
evidence only next to the harness's own reads.

Fault windows come from phases (``latency``, ``lossy``, ``paused``) when a scenario marks
them, else from the fault entries themselves (``latency``/``loss`` until the next
``heal``/``clear``; ``pause`` until ``resume``).

TIMING-TRAFFIC, the traffic the fault planes relayed against the declared timing, is
judged here too: a node that sends less than its failure detector must is running
slower than it declares.

Every time bound of the catalogue derives from the declared timing, so a node that runs
slower than it declares gets bounds looser than it earns. The planes count what each node
sends (``traffic`` readings, see :mod:`harness.history`), independently of the node's own
word; readings at both ends of a quiet phase give each node's real send rate.

The rule is a floor, not an estimate. A failure detector with protocol period
``probe_interval_ms`` sends at least one message each period (a SWIM probe, a heartbeat),
acks and gossip besides. Lifeguard's local health awareness stretches a node's own
period by up to ``AwarenessMaxMultiplier`` = 8 (memberlist), so a correct
node sends at least once every ``8 * probe_interval_ms``, and any window of length ``T``
holds at least ``floor(T / (8 * probe_interval_ms))`` of its sends. ``T`` is the shortest
span the two readings can bound (from the end of the first to the start of the second),
so the floor never asks for more than the counts can hold. A node below it is flagged.

What counts as one message depends on the plane: a read of the sender's socket by a link
proxy (TCP has no message boundaries; sends further apart than the relay's latency are
separate reads, sends together may be one), or a UDP datagram or a TCP segment carrying
PSH in the packet plane. Each undercounts a send only by merging sends made together,
and the floor asks for one send per eight periods. Packet counts of scope
``gossip-port`` (a process-backend node, told apart by its gossip socket) miss the TCP
connections the node opens itself, so a node below the floor there is left undetermined,
never failed.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from gossipcert.harness.history import Entry
from gossipcert.harness.judging.checker import (
    EVIDENCE_LIMIT,
    Checker,
    JudgingContext,
    Tally,
    capability_checker,
    in_time,
    make_verdict,
    timed_verdict,
    unsettled,
)
from gossipcert.harness.judging.clock import run_time
from gossipcert.harness.judging.index import (
    DEAD_STATUSES,
    INF,
    HistoryIndex,
    PairedOp,
    Timeline,
)
from gossipcert.harness.judging.verdict import Requirement, Verdict

__all__ = [
    "CHECKERS",
    "AWARENESS_MAX_MULTIPLIER",
    "check_timing_traffic",
    "traffic_windows",
    "check_dead_stays_dead",
    "check_detection_speed",
    "check_failure_detection",
    "check_no_false_positive",
    "check_no_false_positive_latency",
    "check_no_false_positive_loss",
    "check_no_false_positive_pause",
    "fault_grace",
    "untouched_stretches",
]

_CLEARING_FAULTS = ("heal", "clear", "reset")
_RESUMING_FAULTS = ("resume", "unpause", "cont")


# What exercises failure detection: it is judged from member views (see capability_checker).
checker = capability_checker(reads=("members",), clock_kinds=("member",))


@checker
def check_failure_detection(
    judging: JudgingContext, requirement: Requirement, bound: float
) -> Verdict:
    """FD-DETECT: every member still up marks a SIGKILLed node dead within the bound."""
    index = judging.index
    return _detection(index, requirement, bound)


@checker
def check_detection_speed(
    judging: JudgingContext, requirement: Requirement, bound: float
) -> Verdict:
    """FD-DETECT-EXPECTED: FD-DETECT's figure against what SWIM leads one to expect (a
    SHOULD: slow, not broken)."""
    index = judging.index
    return _detection(index, requirement, bound)


def _detection(index: HistoryIndex, requirement: Requirement, bound: float) -> Verdict:
    tally = Tally(bound)
    early: list[dict[str, Any]] = []  # victims some observer held dead before the kill
    gaps = 0  # first seen dead after the deadline, after a gap in the harness's reads
    if not index.kills:
        return make_verdict(requirement, "untested", None, bound, "no kill fault was applied")
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
                # Declared dead while it was still up: that is no detection of this kill
                # (FD-NO-FALSE-POSITIVE judges the early declaration), and what follows
                # measures nothing about it.
                tally.undetermined += 1
                held = line.times[bisect_right(line.times, t_kill) - 1]
                early.append({**detail, "dead_ms": held})
                continue
            seen = line.first(DEAD_STATUSES, t_kill)
            cutoff = min(obs_life.end, restart)
            if seen is not None and seen >= cutoff:
                seen = None
            if not in_time(seen, deadline) and any(
                index.separated(observer, o, t_kill, deadline) for o in others
            ):
                tally.excluded += 1
                continue
            if seen is not None and seen > deadline and not line.certainly_not_yet(
                DEAD_STATUSES, t_kill, deadline
            ):
                tally.undetermined += 1  # first seen late, but maybe marked dead in time
                gaps += 1
            elif seen is not None:
                tally.observe(seen - t_kill, {**detail, "seen_ms": seen}, since=t_kill)
            elif cutoff < deadline or index.end_ms < deadline:
                tally.undetermined += 1
            else:
                tally.never(min(index.end_ms, cutoff) - t_kill, detail, since=t_kill)
    verdict = timed_verdict(
        requirement, tally, "detections", "no member stayed up through a detection window"
    )
    if early:
        details = {**verdict.details, "dead_before_kill": early[:EVIDENCE_LIMIT]}
        verdict = replace(verdict, details=details)
    return unsettled(verdict, gaps, "detection(s)")


@checker
def check_no_false_positive(
    judging: JudgingContext, requirement: Requirement, bound: float
) -> Verdict:
    """FD-NO-FALSE-POSITIVE: nobody live is declared dead or dropped from a member list
    wherever no fault touches the pair, and nobody live is even suspected in a quiet phase.

    Two kinds of windows: the quiet phases (no fault, no workload: a suspicion is a
    failure too), and every stretch of the run in which no fault touches the pair (see
    :func:`untouched_stretches`), where a workload may load the machine, so a suspicion
    refuted in time is SWIM working and only ``dead`` or ``absent`` counts. Each change
    of a pair's reported status into a counted status inside one window counts once; a
    mark still standing when a window opens counts too. An ``absent`` before the
    observer first reported the subject alive (a joiner not learnt yet) or after the
    subject asked to leave is no false positive. A window judges only what members reads
    certainly served inside it showed: without any, nothing was observed there.
    """
    index = judging.index
    quiet = sorted(index.phases.get("quiet", []))
    stretches = untouched_stretches(index, judging.params)
    incidents: list[dict[str, Any]] = []
    quiet_reads = 0
    stretch_reads = 0
    for (observer, subject), line in index.views.items():
        if observer in index.intruders or subject in index.intruders:
            continue
        found, reads = _bad_reports(
            index, observer, subject, line, [(s, e, "quiet") for s, e in quiet],
            ("suspect", *_GONE),
        )
        quiet_reads += reads
        incidents += found
        pair = stretches.get((observer, subject), [])
        found, reads = _bad_reports(
            index, observer, subject, line, [(s, e, "untouched") for s, e in pair], _GONE
        )
        stretch_reads += reads
        # A mark the quiet phase already counted is not counted again.
        counted = {(d["observer"], d["member"], d["at_ms"]) for d in incidents}
        incidents += [d for d in found if (d["observer"], d["member"], d["at_ms"]) not in counted]
    quiet_ms = sum(end - start for start, end in quiet)
    judged_ms = sum(e - s for pair in stretches.values() for s, e in pair)
    details: dict[str, Any] = {
        "quiet_windows": [list(w) for w in quiet],
        "quiet_observations": quiet_reads,
        "untouched_pair_ms": round(judged_ms),
        "untouched_observations": stretch_reads,
        "grace_ms": {k: round(v, 1) for k, v in fault_grace(judging.params).items()},
        "false_positives": sorted(incidents, key=lambda d: d["at_ms"])[:EVIDENCE_LIMIT],
    }
    count = len(incidents)
    if count > bound:
        first = min(incidents, key=lambda d: d["at_ms"])
        details["window_ms"] = [first["at_ms"], max(d["at_ms"] for d in incidents)]
        where = "a quiet phase" if first["window"] == "quiet" else "a stretch no fault touched"
        text = (
            f"{count} false positive(s): first {first['observer']} reported live "
            f"{first['member']} {first['status']} at {run_time(first['at_ms'], index.begin_ms)} "
            f"in {where}"
        )
        return make_verdict(requirement, "fail", count, bound, text, details)
    if quiet_reads + stretch_reads == 0:
        why = (
            "no member view was read inside a quiet phase or a stretch no fault touched"
            if quiet or stretches
            else "the history has no quiet phase and no stretch in which no fault touched "
            "a pair of live members"
        )
        return make_verdict(requirement, "untested", None, bound, why, details)
    text = (
        f"no live member declared dead or dropped in {judged_ms:.0f} pair-ms no fault "
        f"touched ({stretch_reads} observations)"
    )
    if quiet:
        text = (
            f"no live member suspected in {quiet_ms:.0f} ms of quiet ({quiet_reads} "
            f"observations); {text}"
        )
    return make_verdict(requirement, "pass", count, bound, text, details)


# A member declared dead, or a live member dropped from the observer's list.
_GONE = ("dead", "absent")


def _bad_reports(
    index: HistoryIndex,
    observer: str,
    subject: str,
    line: Timeline,
    windows: Sequence[tuple[float, float, str]],
    statuses: tuple[str, ...],
) -> tuple[list[dict[str, Any]], int]:
    """One pair's reports in ``statuses`` certainly served inside one of ``windows``
    (sorted, disjoint) with both members live all the while, each change into a counted
    status once per window; and how many members reads were served inside them."""
    if not windows:
        return [], 0
    hits, reads = _window_reports(index, observer, subject, line, windows, statuses)
    found = [{"observer": observer, "member": subject, "status": status, "at_ms": t,
              "window": windows[w][2]} for w, t, status in hits]
    return found, sum(reads)


def _window_reports(
    index: HistoryIndex,
    observer: str,
    subject: str,
    line: Timeline,
    windows: Sequence[tuple[Any, ...]],
    statuses: tuple[str, ...],
) -> tuple[list[tuple[int, float, str]], list[int]]:
    """The one walk of a pair's reports through ``windows`` (sorted, disjoint, each
    starting ``(start, end, ...)``): every report in ``statuses`` certainly served inside
    a window, a change of the pair into it within that window, with both members live all
    the while it may have been served and not excused (:func:`_excused`), as (window
    index, time, status); and per window, how many members reads were served inside."""
    starts = [w[0] for w in windows]
    hits: list[tuple[int, float, str]] = []
    reads = [0] * len(windows)
    last: tuple[int, str] | None = None
    for k, (t, status) in enumerate(zip(line.times, line.statuses, strict=True)):
        w = bisect_right(starts, line.earliest[k]) - 1
        if w < 0 or t > windows[w][1]:
            # Not certainly inside (it may straddle a window's edge): no count, but it
            # still tells whether the next report inside is a change.
            last = (bisect_right(starts, t) - 1, status)
            continue
        if not line.from_feed[k]:
            reads[w] += 1
        if (
            status in statuses
            and (w, status) != last
            and index.live_through(observer, line.earliest[k], t)
            and index.live_through(subject, line.earliest[k], t)
            and not _excused(index, observer, subject, line, k)
        ):
            hits.append((w, t, status))
        last = (w, status)
    return hits, reads


def _excused(index: HistoryIndex, observer: str, subject: str, line: Timeline, k: int) -> bool:
    """Whether report ``k`` marks the subject gone for a reason of its own: it had not been
    reported alive yet in the two members' current lives (it was not learnt yet, or only
    an old life's record stood), or it asked to leave (``absent`` only: a leaver
    reported suspect or dead is MEM-LEAVE's failure)."""
    obs, sub = index.life_at(observer, line.earliest[k]), index.life_at(subject, line.earliest[k])
    if obs is None or sub is None:
        return True
    since = max(obs.launched, sub.launched)
    if not any(
        line.earliest[j] >= since and line.served_after(k, j)
        for j in line.by_status.get("alive", [])[: bisect_left(line.by_status.get("alive", []), k)]
    ):
        return True
    return line.statuses[k] == "absent" and any(
        op.node == subject and op.outcome != "fail" and since <= op.invoked <= line.latest[k]
        for op in index.ops.get("leave", [])
    )


def fault_grace(params: Mapping[str, float]) -> dict[str, float]:
    """How long after a fault ends a correct implementation may still show its effects,
    by the kind of fault, from the judged timing and the catalogue's ``slack_ms``:

    * ``heal`` (a partition, a cut or a link toxic cleared): PARTITION-HEAL's bound, the
      time by which views must settle on alive again after a heal;
    * ``restart`` (a node killed and started again): MEM-REJOIN's bound, the time by which
      every member sees the new life alive for good (and, a fortiori, the time a node
      started without state takes to learn the others, MEM-JOIN's smaller bound);
    * ``resume`` (a paused node continued): the longer of MEM-REJOIN's bound (a paused
      node declared dead refutes like a restarted one) and FD-NO-FP-PAUSE's aftermath,
      ``suspicion_max_ms + dissemination_ms``, plus the slack.
    """
    n, probe = params["n"], params["probe_interval_ms"]
    push_pull, spread = params["push_pull_interval_ms"], params["dissemination_ms"]
    slack = params["slack_ms"]
    rejoin = (2 * n - 1) * probe + push_pull + spread + slack
    heal = (2 * n - 1) * probe + math.ceil(math.log2(n)) * push_pull + spread + slack
    return {
        "heal": heal,
        "restart": rejoin,
        "resume": max(rejoin, params["suspicion_max_ms"] + spread + slack),
    }


def untouched_stretches(
    index: HistoryIndex, params: Mapping[str, float]
) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """Per (observer, subject) pair of members, the stretches of the run in which both
    were live and no fault touched the pair, sorted.

    A fault touches a pair from the step that issued it (the fault entry is written once
    the fault is confirmed, a little later) until :func:`fault_grace` after it ended:

    * a kill, restart or stop of either member: until its next life is ready, plus the
      ``restart`` grace (for good when it never comes back); a leave likewise, from the
      leave call;
    * a pause of either member: until its resume, plus the ``resume`` grace;
    * a partition, a cut, latency or loss with either member among the nodes it names
      (a partition's groups, the ends of its links; every node when it names none): until
      the heal that clears it, plus the ``heal`` grace. A death declared on one side of a
      partition spreads to the other once it heals, so one member is enough.

    Any other fault touches its node, or every pair when it names none, until the end.
    """
    grace = fault_grace(params)
    step_times = sorted(e.time_ms for e in index.entries if e.type == "step")

    def issued(t: float) -> float:
        i = bisect_right(step_times, t) - 1
        return step_times[i] if i >= 0 else t

    def back(node: str, t: float) -> float:
        """When ``node``'s next life after ``t`` was ready, plus the restart grace."""
        ready = min((lf.ready for lf in index.lives.get(node, []) if lf.launched >= t),
                    default=INF)
        return ready + grace["restart"]

    def until(i: int, closing: Iterable[str], node: str | None, extra: float) -> float:
        wanted = set(closing)
        for later in index.faults[i + 1 :]:
            if later.op in wanted and (node is None or later.node in (None, node)):
                return later.time_ms + extra
        return INF

    touches: list[tuple[float, float, frozenset[str] | None]] = []
    for i, fault in enumerate(index.faults):
        op, node = fault.op, fault.node
        begin = issued(fault.time_ms)
        if op in ("heal", "leave", "start", *_CLEARING_FAULTS, *_RESUMING_FAULTS):
            continue  # an end of a fault (a leave is taken from its call, below)
        if op in ("kill", "restart", "stop") and node is not None:
            touches.append((begin, back(node, fault.time_ms), frozenset({node})))
        elif op == "pause" and node is not None:
            end = until(i, _RESUMING_FAULTS, node, grace["resume"])
            touches.append((begin, end, frozenset({node})))
        elif op in ("partition", "cut", "latency", "loss"):
            closing = ("heal",) if op in ("partition", "cut") else _CLEARING_FAULTS
            touches.append((begin, until(i, closing, None, grace["heal"]), _named(fault.args)))
        else:
            touches.append((begin, INF, frozenset({node}) if node is not None else None))
    for leave in index.ops.get("leave", []):
        if leave.node is not None and leave.outcome != "fail":
            leaver = str(leave.node)
            touches.append((issued(leave.invoked), back(leaver, leave.invoked),
                            frozenset({leaver})))
    members = [n for n in index.nodes if n not in index.intruders]
    out: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for observer in members:
        for subject in members:
            if observer == subject:
                continue
            blocked = sorted(
                (s, e) for s, e, who in touches
                if who is None or observer in who or subject in who
            )
            spans = [
                (max(a.ready, b.ready), min(a.end, b.end, index.end_ms))
                for a in index.lives.get(observer, [])
                for b in index.lives.get(subject, [])
            ]
            free = _subtract(sorted(sp for sp in spans if sp[0] < sp[1]), blocked)
            if free:
                out[(observer, subject)] = free
    return out


def _named(args: Mapping[str, Any]) -> frozenset[str] | None:
    """The nodes a network fault names (a partition's groups when there are two or more,
    the ends of its links), None when it names none (it touches everyone)."""
    named: set[str] = set()
    groups = args.get("groups")
    if isinstance(groups, list) and len(groups) > 1:
        named |= {str(n) for g in groups if isinstance(g, list | tuple) for n in g}
    for link in args.get("links") or []:
        if isinstance(link, list | tuple):
            named |= {str(n) for n in link}
    return frozenset(named) if named else None


def _subtract(
    spans: Sequence[tuple[float, float]], blocked: Sequence[tuple[float, float]]
) -> list[tuple[float, float]]:
    """``spans`` (sorted, disjoint) less every interval of ``blocked``."""
    out: list[tuple[float, float]] = []
    for start, end in spans:
        cursor = start
        for b0, b1 in blocked:
            if b1 <= cursor or b0 >= end:
                continue
            if b0 > cursor:
                out.append((cursor, b0))
            cursor = max(cursor, b1)
            if cursor >= end:
                break
        if cursor < end:
            out.append((cursor, end))
    return out


@checker
def check_dead_stays_dead(
    judging: JudgingContext, requirement: Requirement, bound: float
) -> Verdict:
    """FD-DEAD-STAYS-DEAD: once a member reports a killed node dead, it never reports it
    alive or suspect again until that node restarts (a stale alive must not resurrect it).

    Only a report certainly served after the dead one counts: a read invoked before the
    dead report could have happened may show the older status without any regression.
    """
    index = judging.index
    if not index.kills:
        return make_verdict(requirement, "untested", None, bound, "no kill fault was applied")
    incidents: list[dict[str, Any]] = []
    judged = 0
    for kill in index.kills:
        victim, t_kill = str(kill.node), kill.time_ms
        if not any(
            lf.end == t_kill and lf.end_cause == "kill" for lf in index.lives.get(victim, [])
        ):
            continue  # it had left (or was not up): nothing was declared dead
        restart = min(
            (
                lf.launched
                for lf in index.lives.get(victim, [])
                if lf.launched >= t_kill and (lf.end, lf.end_cause) != (t_kill, "kill")
            ),
            default=INF,
        )
        for observer in index.nodes:
            life = index.life_at(observer, t_kill)
            if observer == victim or life is None:
                continue
            line = index.timeline(observer, victim)
            cutoff = min(life.end, restart)
            dead = line.first_index(DEAD_STATUSES, t_kill)
            if dead is None or line.times[dead] >= cutoff:
                continue
            judged += 1
            dead_at = line.times[dead]
            for i in range(dead + 1, len(line.times)):
                t, status = line.times[i], line.statuses[i]
                if t >= cutoff:
                    break
                # A read that may have been served before the dead report (it was
                # invoked before that report could have happened) contradicts nothing.
                if status in ("alive", "suspect") and line.served_after(i, dead):
                    incidents.append(
                        {
                            "observer": observer,
                            "member": victim,
                            "dead_ms": dead_at,
                            "status": status,
                            "at_ms": t,
                            "served_from_ms": line.earliest[i],
                        }
                    )
                    break
    if judged == 0:
        why = "no member reported a killed node dead, so nothing could come back"
        return make_verdict(requirement, "untested", None, bound, why)
    details = {"judged": judged, "resurrections": incidents[:10]}
    if len(incidents) > bound:
        first = incidents[0]
        text = (
            f"{len(incidents)} of {judged} members brought a dead node back: "
            f"{first['observer']} reported killed {first['member']} {first['status']} at "
            f"{run_time(first['at_ms'], index.begin_ms)}, "
            f"{first['at_ms'] - first['dead_ms']:.0f} ms after dead"
        )
        return make_verdict(requirement, "fail", len(incidents), bound, text, details)
    text = f"all {judged} members kept every killed node dead until it restarted"
    return make_verdict(requirement, "pass", 0, bound, text, details)


def _fault_windows(
    index: HistoryIndex, opening: Iterable[str], closing: Sequence[str]
) -> list[tuple[float, float, Mapping[str, Any], str | None]]:
    """Windows from a fault in ``opening`` to the next ``closing`` fault (same node when
    the opening names one)."""
    wanted = set(opening)
    out: list[tuple[float, float, Mapping[str, Any], str | None]] = []
    for i, fault in enumerate(index.faults):
        if fault.op not in wanted:
            continue
        end = index.end_ms
        for later in index.faults[i + 1 :]:
            if later.op in closing and (fault.node is None or later.node in (None, fault.node)):
                end = later.time_ms
                break
        out.append((fault.time_ms, end, fault.args, fault.node))
    return out


def _windows(
    index: HistoryIndex, phase: str, faults: Iterable[str], closing: Sequence[str]
) -> list[tuple[float, float, Mapping[str, Any], str | None]]:
    spans = index.phases.get(phase, [])
    if spans:
        args = index.phase_args.get(phase, [])
        return [
            (s, e, args[i] if i < len(args) else {}, _node_of(args[i] if i < len(args) else {}))
            for i, (s, e) in enumerate(spans)
        ]
    return _fault_windows(index, faults, closing)


def _node_of(args: Mapping[str, Any]) -> str | None:
    node = args.get("node")
    return str(node) if node is not None else None


def _number(args: Mapping[str, Any], *names: str) -> float | None:
    for name in names:
        value = args.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def _false_positives(
    index: HistoryIndex,
    windows: Sequence[tuple[float, float, str | None]],
    statuses: tuple[str, ...],
    excused: list[dict[str, Any]] | None = None,
) -> tuple[list[dict[str, Any]], list[int]]:
    """Reports of a live member (not the window's exempt node) in ``statuses`` inside a
    window; each change of a pair into a bad status counts once. Also, per window, the
    number of members reads certainly served inside it. A report counts only when it was
    certainly served inside the window, with both members live all the while it may have
    been served, and not excused (:func:`_excused`: a member not learnt yet, a leaver).

    With ``excused`` given, a report about a member a partition or cut separated from the
    observer between the window's start and the report is not counted but appended
    there: that partition, not the window's fault, explains it (PARTITION-HEAL judges it).
    So is a later report of the same member in the same window: a death declared across
    a partition spreads to that member's own side once the partition heals.
    """
    incidents: list[tuple[int, dict[str, Any]]] = []
    reads = [0] * len(windows)
    for (observer, subject), line in index.views.items():
        if observer in index.intruders or subject in index.intruders:
            continue
        hits, pair_reads = _window_reports(index, observer, subject, line, windows, statuses)
        reads = [a + b for a, b in zip(reads, pair_reads, strict=True)]
        incidents += [
            (w, {"observer": observer, "member": subject, "status": status, "at_ms": t})
            for w, t, status in hits
            if subject != windows[w][2]  # the window's exempt node
        ]
    incidents.sort(key=lambda x: x[1]["at_ms"])
    if excused is None:
        return [d for _, d in incidents], reads
    counted: list[dict[str, Any]] = []
    explained: set[tuple[int, str]] = set()  # (window, member) a partition got declared
    for i, d in incidents:
        observer, subject, t = d["observer"], d["member"], d["at_ms"]
        if (i, subject) in explained or index.separated(observer, subject, windows[i][0], t):
            explained.add((i, subject))
            excused.append(d)
        else:
            counted.append(d)
    return counted, reads


def _fp_verdict(
    requirement: Requirement,
    bound: float,
    index: HistoryIndex,
    windows: Sequence[tuple[float, float, str | None]],
    what: str,
    skipped: Sequence[str],
    excuse_separated: bool = False,
) -> Verdict:
    if not windows:
        why = f"no {what} window in the history"
        if skipped:
            why += f" that qualifies ({'; '.join(skipped)})"
        return make_verdict(requirement, "untested", None, bound, why)
    excused: list[dict[str, Any]] | None = [] if excuse_separated else None
    dead, reads = _false_positives(index, windows, _GONE, excused)
    suspected, _ = _false_positives(index, windows, ("suspect",))
    unread = [[s, e] for (s, e, _), r in zip(windows, reads, strict=True) if r == 0]
    observed = sum(reads)
    if observed == 0 and len(dead) <= bound:
        why = f"no member view was read inside the {what} window"
        if len(windows) > 1:
            why = f"no member view was read inside any of the {len(windows)} {what} windows"
        return make_verdict(requirement, "untested", None, bound, why, {"unread_windows": unread})
    total_ms = sum(end - start for start, end, _ in windows)
    details: dict[str, Any] = {
        "windows": [[s, e] for s, e, _ in windows],
        "observations": observed,
        "declared_dead": dead[:10],
        "suspicions_refuted_or_pending": len(suspected),
    }
    if unread:
        details["unread_windows"] = unread
    if skipped:
        details["skipped_windows"] = list(skipped)
    if excused is not None:
        details["excluded_partitioned"] = len(excused)
        details["excluded_examples"] = excused[:10]
    if len(dead) > bound:
        first = dead[0]
        opened = [s for s, _, _ in windows if s <= first["at_ms"]]
        details["window_ms"] = [max(opened, default=first["at_ms"]),
                                max(d["at_ms"] for d in dead)]
        how = (
            f"declared {first['member']} dead" if first["status"] == "dead"
            else f"dropped live {first['member']} from its list"
        )
        text = (
            f"{len(dead)} live member(s) declared dead or dropped in {total_ms:.0f} ms of "
            f"{what}: first {first['observer']} {how} at {run_time(first['at_ms'], index.begin_ms)}"
        )
        return make_verdict(requirement, "fail", len(dead), bound, text, details)
    excluded = f", {len(excused)} explained by a partition or cut" if excused else ""
    text = (
        f"no live member declared dead or dropped in {total_ms:.0f} ms of {what} "
        f"({observed} observations, {len(suspected)} suspicion(s) raised{excluded})"
    )
    return make_verdict(requirement, "pass", 0, bound, text, details)


@checker
def check_no_false_positive_latency(
    judging: JudgingContext, requirement: Requirement, bound: float
) -> Verdict:
    """FD-NO-FP-LATENCY: under added latency below the probe timeout, nobody is declared
    dead. Windows whose latency (plus jitter) reaches the probe timeout do not qualify."""
    index = judging.index
    timeout = judging.params["probe_timeout_ms"]
    windows: list[tuple[float, float, str | None]] = []
    skipped: list[str] = []
    for start, end, args, _ in _windows(index, "latency", ("latency",), _CLEARING_FAULTS):
        latency = _number(args, "latency_ms", "latency")
        jitter = _number(args, "jitter_ms", "jitter") or 0.0
        at = run_time(start, index.begin_ms)
        if args.get("skipped"):
            skipped.append(f"window at {at} skipped: {args['skipped']}")
        elif latency is None:
            skipped.append(f"window at {at} names no latency")
        elif latency + jitter >= timeout:
            skipped.append(
                f"window at {at}: {latency + jitter:.0f} ms >= probe timeout {timeout:.0f}"
            )
        else:
            windows.append((start, end, None))
    return _fp_verdict(requirement, bound, index, windows, "latency", skipped)


@checker
def check_no_false_positive_loss(
    judging: JudgingContext, requirement: Requirement, bound: float
) -> Verdict:
    """FD-NO-FP-LOSS: under up to 10% packet/message loss nobody is declared dead (a
    suspicion may be raised, then refuted: that is SWIM working)."""
    index = judging.index
    windows: list[tuple[float, float, str | None]] = []
    skipped: list[str] = []
    for start, end, args, _ in _windows(index, "lossy", ("loss",), _CLEARING_FAULTS):
        rate = _number(args, "loss", "rate", "probability", "toxicity")
        if rate is not None and rate > 1:
            rate /= 100.0  # given in percent
        if rate is None or rate > 0.1 + 1e-9:
            at = run_time(start, index.begin_ms)
            skipped.append(f"window at {at}: loss {rate!r} is not within 10%")
        else:
            windows.append((start, end, None))
    return _fp_verdict(requirement, bound, index, windows, "loss", skipped)


@checker
def check_no_false_positive_pause(
    judging: JudgingContext, requirement: Requirement, bound: float
) -> Verdict:
    """FD-NO-FP-PAUSE: while one node is paused (SIGSTOP) and until its aftermath has had
    time to settle, no *other* live member is declared dead by anyone, the resumed node
    included (healthy nodes declared dead when one node is starved is a known bug).

    A pair separated by a partition or cut inside the window is excluded: a death the
    partition explains is not one the pause caused."""
    index = judging.index
    params = judging.params
    aftermath = params["suspicion_max_ms"] + params["dissemination_ms"]
    windows: list[tuple[float, float, str | None]] = []
    skipped: list[str] = []
    for start, end, _, node in _windows(index, "paused", ("pause",), _RESUMING_FAULTS):
        if node is None:
            skipped.append(f"pause at {run_time(start, index.begin_ms)} names no node")
            continue
        windows.append((start, min(end + aftermath, index.end_ms), node))
    return _fp_verdict(
        requirement, bound, index, windows, "pause", skipped, excuse_separated=True
    )


# ---- TIMING-TRAFFIC: what the planes counted against the declared timing ------------

# memberlist's AwarenessMaxMultiplier: the most Lifeguard stretches a node's own probe
# period. A correct failure detector sends at least once per this many declared periods.
AWARENESS_MAX_MULTIPLIER = 8
# Counts whose plane sees everything the node sends; others can only show a floor is met.
_COMPLETE_SCOPES = ("link", "netns")
_SHOWN_LIMIT = 50


def _readings(index: HistoryIndex) -> list[PairedOp]:
    return [
        op
        for op in index.ops.get("traffic", [])
        if op.outcome == "ok" and isinstance(op.result, Mapping)
        and isinstance(op.result.get("nodes"), Mapping) and op.completed < math.inf
        and not op.args.get("periodic")  # the figures' samples, not the scenario's rounds
    ]


def traffic_windows(index: HistoryIndex) -> tuple[list[tuple[PairedOp, PairedOp]], list[str]]:
    """Pairs of consecutive readings that lie inside one quiet phase with no fault between
    them, and why other pairs were left out."""
    readings = _readings(index)
    windows: list[tuple[PairedOp, PairedOp]] = []
    skipped: list[str] = []
    for start, end in index.phases.get("quiet", []):
        inside = [r for r in readings if r.invoked >= start and r.completed <= end]
        for first, second in zip(inside, inside[1:], strict=False):
            faults = [f.op for f in index.faults if first.invoked <= f.time_ms <= second.completed]
            if faults:
                skipped.append(f"a fault ({', '.join(sorted(set(faults)))}) fell between the "
                               f"readings at {run_time(first.invoked, index.begin_ms)} and "
                               f"{run_time(second.invoked, index.begin_ms)}")
                continue
            windows.append((first, second))
    return windows, skipped


def _count(reading: PairedOp, node: str) -> Mapping[str, Any] | None:
    assert reading.result is not None
    found = reading.result["nodes"].get(node)
    if not isinstance(found, Mapping):
        return None
    if not isinstance(found.get("messages"), int | float):
        return None
    return found


def declared_probe_ms(history: Sequence[Entry]) -> float | None:
    """The probe interval the manifest itself declared (the meta's ``timing_profile``),
    None when the history does not say. The meta's ``timing`` may hold the profile's
    ceiling instead: a node declaring a slower period than the profile is judged at the
    ceiling for bounds, but runs, and may only be held to, what it declared."""
    meta = next((e for e in history if e.type == "meta"), None)
    profile = meta.args.get("timing_profile") if meta is not None else None
    declared = profile.get("declared") if isinstance(profile, Mapping) else None
    value = declared.get("probe_interval_ms") if isinstance(declared, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return float(value)


@checker
def check_timing_traffic(
    judging: JudgingContext, requirement: Requirement, bound: float
) -> Verdict:
    """TIMING-TRAFFIC: members whose relayed send rate in a quiet phase is below one
    message per ``AWARENESS_MAX_MULTIPLIER`` declared probe periods."""
    index = judging.index
    declared_ms = declared_probe_ms(index.entries)
    if not _readings(index):
        why = ("no traffic reading in the history: no fault plane could count what the "
               "nodes sent (a real Toxiproxy has no counters; the packet plane needs root)")
        return make_verdict(requirement, "untested", None, bound, why)
    windows, skipped = traffic_windows(index)
    if not windows:
        why = "no two traffic readings inside one quiet phase without a fault between them"
        if skipped:
            why += f" ({skipped[0]})"
        return make_verdict(requirement, "untested", None, bound, why)
    # The declared period when the meta records it, else the timing the run is judged
    # at (the manifest's own, or the profile's value for one it left out).
    judged_ms = judging.params["probe_interval_ms"]
    probe_ms = declared_ms if declared_ms is not None else judged_ms
    period_ms = AWARENESS_MAX_MULTIPLIER * probe_ms
    members = [n for n in index.nodes if n not in index.intruders]
    rows: list[dict[str, Any]] = []
    flagged: dict[str, dict[str, Any]] = {}
    undetermined: list[str] = []
    judged = 0
    short: list[float] = []
    for first, second in windows:
        span_ms = second.invoked - first.completed  # the least the counts can cover
        widest_ms = second.completed - first.invoked
        live = [n for n in members if index.live_through(n, first.invoked, second.completed)]
        floor = math.floor(span_ms / period_ms) if span_ms > 0 else 0
        if floor < 1 or len(live) < 2:
            short.append(span_ms)
        result = first.result or {}
        plane, unit = str(result.get("plane", "?")), str(result.get("unit", "messages"))
        for node in live:
            a, b = _count(first, node), _count(second, node)
            if a is None or b is None:
                continue
            messages = float(b["messages"]) - float(a["messages"])
            nbytes = float(b.get("bytes", 0)) - float(a.get("bytes", 0))
            if messages < 0:  # the counters restarted (a new namespace): no window here
                continue
            seconds = (span_ms + widest_ms) / 2000.0
            scope = str(b.get("scope", "?"))
            row: dict[str, Any] = {
                "node": node,
                "plane": plane,
                "unit": unit,
                "scope": scope,
                "window_ms": [round(first.completed), round(second.invoked)],
                "seconds": round(seconds, 2),
                "messages": int(messages),
                "bytes": int(nbytes),
                "messages_per_s": round(messages / seconds, 2) if seconds > 0 else None,
                "bytes_per_s": round(nbytes / seconds, 1) if seconds > 0 else None,
                "implied_period_ms": round(widest_ms / messages, 1) if messages else None,
                "declared_probe_interval_ms": probe_ms,
                "floor_messages": floor,
            }
            if floor < 1 or len(live) < 2:
                row["status"] = "too short to judge"
            elif messages >= floor:
                row["status"] = "pass"
                judged += 1
            elif scope not in _COMPLETE_SCOPES:
                row["status"] = "undetermined (the plane misses part of what it sends)"
                undetermined.append(node)
            else:
                row["status"] = "fail"
                judged += 1
                flagged.setdefault(node, row)
            rows.append(row)
    details: dict[str, Any] = {
        "declared_probe_interval_ms": probe_ms,
        "probe_interval_source": "declared" if declared_ms is not None else "judged timing",
        "awareness_max_multiplier": AWARENESS_MAX_MULTIPLIER,
        "rates": rows[:_SHOWN_LIMIT],
    }
    if skipped:
        details["skipped"] = skipped[:_SHOWN_LIMIT]
    if undetermined:
        details["undetermined"] = sorted(set(undetermined))
    if flagged:
        worst = sorted(flagged.values(), key=lambda r: r["messages"])
        details["flagged"] = worst[:_SHOWN_LIMIT]
        shown = "; ".join(_describe(r) for r in worst[:3])
        text = (f"{len(flagged)} node(s) sent fewer than one message per "
                f"{AWARENESS_MAX_MULTIPLIER} x {probe_ms:.0f} ms declared probe interval "
                f"in a quiet phase: {shown}")
        return make_verdict(requirement, "fail", len(flagged), bound, text, details)
    if judged == 0:
        if undetermined:
            why = (f"{len(set(undetermined))} node(s) below the floor on partial counts "
                   "(scope gossip-port), none judged")
        else:
            longest = max(short, default=0.0)
            why = (f"the quiet window ({longest:.0f} ms between readings) is shorter than "
                   f"{AWARENESS_MAX_MULTIPLIER} declared probe periods ({period_ms:.0f} ms)"
                   ", or fewer than two members were live: no floor to judge")
        return make_verdict(requirement, "untested", None, bound, why, details)
    passing = [r for r in rows if r["status"] == "pass"]
    slowest = min(passing, key=lambda r: r["messages_per_s"] or 0.0)
    text = (f"every member sent at least one message per {AWARENESS_MAX_MULTIPLIER} declared "
            f"probe periods ({period_ms:.0f} ms) in {len(windows)} quiet window(s); slowest "
            f"{_describe(slowest)}")
    if undetermined:
        text += f"; {len(set(undetermined))} undetermined on partial counts"
    return make_verdict(requirement, "pass", 0, bound, text, details)


def _describe(row: Mapping[str, Any]) -> str:
    implied = row.get("implied_period_ms")
    period = "no message" if implied is None else f"one per {implied:.0f} ms"
    return (f"{row['node']} {row['messages']} {row['unit']} / {row['bytes']} bytes in "
            f"{row['seconds']:.1f} s ({period}, declared probe "
            f"{row['declared_probe_interval_ms']:.0f} ms, floor {row['floor_messages']})")


# The checkers of this capability's requirements, by the name the catalogue gives.
CHECKERS: dict[str, Checker] = {
    "check_failure_detection": check_failure_detection,
    "check_detection_speed": check_detection_speed,
    "check_no_false_positive": check_no_false_positive,
    "check_dead_stays_dead": check_dead_stays_dead,
    "check_no_false_positive_latency": check_no_false_positive_latency,
    "check_no_false_positive_loss": check_no_false_positive_loss,
    "check_no_false_positive_pause": check_no_false_positive_pause,
    "check_timing_traffic": check_timing_traffic,
}
