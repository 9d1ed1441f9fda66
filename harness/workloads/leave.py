"""Graceful leave: a node that asks to leave ends as ``left`` on every member, never as
failed, for as long as it stays away.

A capability of its own (``leave`` in a manifest), apart from membership: many gossip
libraries have membership and failure detection without a graceful leave. An
implementation that does not claim it never gets a leave step (the step is skipped, its
requirement ``not-claimed``); one that claims it and answers 501 to every leave breaks the
contract.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gossipcert.harness.judging.checker import (
    Checker,
    JudgingContext,
    Tally,
    capability_checker,
    make_verdict,
    timed_verdict,
)
from gossipcert.harness.judging.index import INF
from gossipcert.harness.judging.verdict import Requirement, Verdict
from gossipcert.harness.workloads.operations import Op

if TYPE_CHECKING:
    from gossipcert.harness.workloads.interpreter import Execution


__all__ = ["CHECKERS", "OPERATIONS", "Leave", "check_member_leave"]


# ---- operations -----------------------------------------------------------------------


@dataclass(frozen=True)
class Leave(Op):
    kind = "leave"
    summary = "ask a node to leave gracefully (POST /v1/leave); it is gone afterwards"
    needs = "leave"
    node: str

    def run(self, x: Execution) -> None:
        if x.driver.leave(self.node):
            x.progress(f"{self.node} left gracefully")
        else:
            x.progress(f"{self.node} refused to leave; it stays in the cluster")


# ---- checkers --------------------------------------------------------------------------


# What exercises a graceful leave: the leave calls (all answered 501: the declared
# capability is missing) and the member views that must show the leaver left.
checker = capability_checker(calls=("leave",), reads=("members",), clock_kinds=("member",))


@checker
def check_member_leave(judging: JudgingContext, requirement: Requirement, bound: float) -> Verdict:
    """MEM-LEAVE: every live member sees a leaver as ``left`` in time, never ``dead``.

    Memberlist-based systems have ended graceful leaves as ``failed``: a ``suspect`` or
    ``dead`` report of the leaver certainly served after it asked to leave is a failure,
    whatever the time, and whether or not the member had reported it ``left`` (or no
    longer listed it) first: a leaver that later turns dead is the same failure, found
    later. Only the leaver's own return (a new life) ends the window.
    """
    index = judging.index
    leaves = [op for op in index.ops.get("leave", []) if op.outcome == "ok" and op.node]
    if not leaves:
        return make_verdict(requirement, "untested", None, bound, "no node left gracefully")
    tally = Tally(bound)
    failed_as_dead: list[dict[str, object]] = []
    grace = judging.params["gossip_interval_ms"]
    for op in leaves:
        leaver, t0 = str(op.node), op.invoked
        if any(
            f.node == leaver and f.op in ("kill", "restart") and t0 <= f.time_ms <= t0 + grace
            for f in index.faults
        ):
            tally.undetermined += 1  # killed before its leave could leave the node
            continue
        deadline = t0 + bound
        rejoined = min(
            (lf.launched for lf in index.lives.get(leaver, []) if lf.launched > t0), default=INF
        )
        for observer in index.nodes:
            life = index.life_at(observer, t0)
            if observer == leaver or life is None:
                continue
            line = index.timeline(observer, leaver)
            window_end = min(life.end, rejoined, index.end_ms)
            detail = {"observer": observer, "member": leaver, "leave_ms": t0}
            seen_left: float | None = None
            for i in line.span(t0, window_end):
                t, status = line.times[i], line.statuses[i]
                failed = status in ("suspect", "dead")
                if failed and not line.certainly_after(i, t0):
                    continue  # a read invoked before the leave may show the old view
                if failed and index.separated(observer, leaver, t0, t):
                    break  # cut off from the leaver: it could not hear the leave
                if failed:
                    failed_as_dead.append({**detail, "status": status, "at_ms": t,
                                           **({"after_left_ms": seen_left}
                                              if seen_left is not None else {})})
                    break
                if status in ("left", "absent") and seen_left is None:
                    seen_left = t
            if seen_left is not None:
                tally.observe(seen_left - t0, {**detail, "seen_ms": seen_left}, since=t0)
            elif index.separated(observer, leaver, t0, deadline):
                tally.excluded += 1
            elif window_end < deadline:
                tally.undetermined += 1
            else:
                tally.never(window_end - t0, detail, since=t0)
    verdict = timed_verdict(requirement, tally, "leave observations", "no leave was followed")
    if failed_as_dead:
        first = failed_as_dead[0]
        after = " after reporting it left" if "after_left_ms" in first else ""
        text = (
            f"{len(failed_as_dead)} member(s) reported a leaver {first['status']} instead of "
            f"left, e.g. {first['observer']} saw {first['member']} {first['status']}{after}"
        )
        details = {**verdict.details, "reported_failed": failed_as_dead[:10]}
        # What a node reported, not when: no stall of the host excuses it.
        return make_verdict(requirement, "fail", verdict.measured, bound, text, details,
                            windows=())
    return verdict


# The operations this capability adds to the vocabulary.
OPERATIONS: tuple[type[Op], ...] = (Leave,)


# The checkers of this capability's requirements, by the name the catalogue gives.
CHECKERS: dict[str, Checker] = {"check_member_leave": check_member_leave}
