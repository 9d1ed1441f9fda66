"""Membership: every member sees every other alive after the join, a restarted node
rejoins, and views (and kv digests) settle after a heal.

It also owns the join operation. A graceful leave is a capability of its own
(:mod:`harness.workloads.leave`): an implementation may have membership without it.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from gossipcert.harness.judging.checker import (
    Checker,
    JudgingContext,
    Tally,
    capability_checker,
    in_time,
    make_verdict,
    timed_verdict,
)
from gossipcert.harness.judging.index import Timeline
from gossipcert.harness.judging.verdict import Requirement, Verdict
from gossipcert.harness.workloads.kv import heal_kv
from gossipcert.harness.workloads.operations import Op

if TYPE_CHECKING:
    from gossipcert.harness.workloads.interpreter import Execution


__all__ = [
    "OPERATIONS",
    "CHECKERS",
    "Join",
    "check_member_join",
    "check_member_rejoin",
    "check_partition_heal",
    "settled_alive",
    "unconfirmed_alive",
]


# ---- operations -----------------------------------------------------------------------


@dataclass(frozen=True)
class Join(Op):
    kind = "join"
    summary = "ask a running node to join through every other live node (POST /v1/join)"
    node: str

    def run(self, x: Execution) -> None:
        x.driver.join(self.node)


# ---- checkers --------------------------------------------------------------------------



# What exercises membership: its member views (see capability_checker).
checker = capability_checker(calls=("members",), reads=("members",), clock_kinds=("member",))


@checker
def check_member_join(judging: JudgingContext, requirement: Requirement, bound: float) -> Verdict:
    """MEM-JOIN: each member sees each other alive soon after both are ready.

    Measured from the later of the two becoming ready: a member cannot be expected to
    know a node before it exists itself.
    """
    index = judging.index
    tally = Tally(bound)
    lives = [life for node in index.nodes for life in index.lives.get(node, [])]
    explicit = [life for life in lives if not life.implicit]
    if not explicit:
        return make_verdict(requirement, "untested", None, bound, "the history has no node start")
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
            if not in_time(seen, deadline) and index.separated(x.node, y.node, ref, deadline):
                tally.excluded += 1
                continue
            if seen is not None:
                tally.observe(seen - ref, {**detail, "seen_ms": seen}, since=ref)
            elif stop < deadline or index.end_ms < deadline:
                tally.undetermined += 1
            else:
                tally.never(min(index.end_ms, stop) - ref, detail, since=ref)
    return timed_verdict(
        requirement, tally, "member pairs", "no pair of members was up together long enough"
    )


@checker
def check_member_rejoin(judging: JudgingContext, requirement: Requirement, bound: float) -> Verdict:
    """MEM-REJOIN: a node restarted under the same id is seen alive again, for good.

    Measured per (observer, restarted node) from the new life's readiness until the
    observer's view settles on alive (a view shadowed by an old ``dead`` never does). An
    alive standing from before the new life with no report since says nothing of the new
    life: unobserved (undetermined), never settled.
    """
    index = judging.index
    tally = Tally(bound)
    restarts = [life for lives in index.lives.values() for life in lives[1:] if not life.implicit]
    if not restarts:
        return make_verdict(requirement, "untested", None, bound, "no node was restarted")
    for life in restarts:
        deadline = life.ready + bound
        for observer in index.nodes:
            obs = index.life_at(observer, life.ready)
            if observer == life.node or obs is None:
                continue
            window_end = min(life.end, obs.end, index.end_ms)
            detail = {"observer": observer, "member": life.node, "ready_ms": life.ready}
            line = index.timeline(observer, life.node)
            settled = settled_alive(line, life.ready, window_end)
            if settled is not None and settled <= window_end:
                tally.observe(settled - life.ready, {**detail, "seen_ms": settled},
                              since=life.ready)
            elif index.separated(observer, life.node, life.ready, deadline):
                tally.excluded += 1
            elif window_end < deadline or unconfirmed_alive(line, life.ready, window_end):
                tally.undetermined += 1
            else:
                tally.never(window_end - life.ready, detail, since=life.ready)
    return timed_verdict(
        requirement, tally, "rejoin observations", "no restarted node was followed long enough"
    )


@checker
def check_partition_heal(
    judging: JudgingContext, requirement: Requirement, bound: float
) -> Verdict:
    """PARTITION-HEAL: after a heal, views settle on alive for good and kv digests agree.

    A pair counts as settled from the last time its view turned alive with no later
    non-alive report before the next partition, so flapping after a heal is caught; it
    must be seen alive after the heal: an alive standing from before it with no report
    since is unobserved (undetermined), never settled.
    """
    index = judging.index
    tally = Tally(bound)
    heals = [h for h in index.heals if any(c.end == h for c in index.cuts)]
    if not heals:
        return make_verdict(
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
                line = index.timeline(observer, subject)
                settled = settled_alive(line, t_heal, window_end)
                if settled is not None:
                    tally.observe(settled - t_heal, {**detail, "seen_ms": settled},
                                  since=t_heal)
                elif window_end < deadline or unconfirmed_alive(line, t_heal, window_end):
                    tally.undetermined += 1
                else:
                    tally.never(window_end - t_heal, detail, since=t_heal)
        if not kv_checked:
            continue
        note = heal_kv(index, members, t_heal, window_end, deadline, tally)
        if note:
            kv_notes.append(note)
    verdict = timed_verdict(
        requirement, tally, "post-heal checks", "no heal was followed long enough"
    )
    if kv_notes:
        verdict = replace(verdict, details={**verdict.details, "kv": kv_notes})
    return verdict


def settled_alive(line: Timeline, t_from: float, window_end: float) -> float | None:
    """When ``line`` turned ``alive`` for good in ``(t_from, window_end]`` (``t_from``
    itself when it already stood alive then), or None when it did not stay alive.

    A non-alive report undoes the stretch only when it was certainly served after the
    latest alive one; one that may have been served before it (their intervals overlap)
    contradicts nothing, but the stretch is then known to hold only from that latest
    alive report on.

    The stretch must be seen to hold after ``t_from``: its latest alive report must have
    been served after it. An alive that stood before ``t_from`` with nothing reported
    since is not a settled view but an unobserved one (:func:`unconfirmed_alive`).
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
    if latest is None or not line.certainly_after(latest, t_from):
        return None
    return settled


def unconfirmed_alive(line: Timeline, t_from: float, window_end: float) -> bool:
    """Whether ``line`` stood alive at ``t_from`` and nothing certainly served after it, up
    to ``window_end``, says what it was then: neither settled nor failed, unobserved."""
    before = bisect_right(line.times, t_from) - 1
    if before < 0 or line.statuses[before] != "alive":
        return False
    return not any(line.certainly_after(i, t_from) for i in line.span(t_from, window_end))


# The operations this capability adds to the vocabulary.
OPERATIONS: tuple[type[Op], ...] = (Join,)


# The checkers of this capability's requirements, by the name the catalogue gives.
CHECKERS: dict[str, Checker] = {
    "check_member_join": check_member_join,
    "check_member_rejoin": check_member_rejoin,
    "check_partition_heal": check_partition_heal,
}
