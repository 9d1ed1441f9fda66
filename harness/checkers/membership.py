"""Membership beyond the join: a graceful leave ends as ``left``; a restarted node rejoins."""

from __future__ import annotations

from gossipcert.harness.bounds import derived_parameters
from gossipcert.harness.checkers._core import (
    INF,
    Requirement,
    Verdict,
    _checker,
    _Index,
    _settled_alive,
    _Tally,
    _timed_verdict,
    _verdict,
)

__all__ = ["check_member_leave", "check_member_rejoin"]


@_checker
def check_member_leave(index: _Index, requirement: Requirement, bound: float) -> Verdict:
    """MEM-LEAVE: every live member sees a leaver as ``left`` in time, never ``dead``.

    Memberlist-based systems have ended graceful leaves as ``failed``: a ``suspect`` or
    ``dead`` report of the leaver certainly served after it asked to leave is a failure,
    whatever the time.
    """
    leaves = [op for op in index.ops.get("leave", []) if op.outcome == "ok" and op.node]
    if not leaves:
        return _verdict(requirement, "untested", None, bound, "no node left gracefully")
    tally = _Tally(bound)
    failed_as_dead: list[dict[str, object]] = []
    grace = derived_parameters(index.timing, len(index.nodes))["gossip_interval_ms"]
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
                if failed and seen_left is None:
                    failed_as_dead.append({**detail, "status": status, "at_ms": t})
                    break
                if status in ("left", "absent") and seen_left is None:
                    seen_left = t
            if seen_left is not None:
                tally.observe(seen_left - t0, {**detail, "seen_ms": seen_left})
            elif index.separated(observer, leaver, t0, deadline):
                tally.excluded += 1
            elif window_end < deadline:
                tally.undetermined += 1
            else:
                tally.never(window_end - t0, detail)
    verdict = _timed_verdict(requirement, tally, "leave observations", "no leave was followed")
    if failed_as_dead:
        first = failed_as_dead[0]
        text = (
            f"{len(failed_as_dead)} member(s) reported a leaver {first['status']} instead of "
            f"left, e.g. {first['observer']} saw {first['member']} {first['status']}"
        )
        details = {**verdict.details, "reported_failed": failed_as_dead[:10]}
        return _verdict(requirement, "fail", verdict.measured, bound, text, details)
    return verdict


@_checker
def check_member_rejoin(index: _Index, requirement: Requirement, bound: float) -> Verdict:
    """MEM-REJOIN: a node restarted under the same id is seen alive again, for good.

    Measured per (observer, restarted node) from the new life's readiness until the
    observer's view settles on alive (a view shadowed by an old ``dead`` never does).
    """
    tally = _Tally(bound)
    restarts = [life for lives in index.lives.values() for life in lives[1:] if not life.implicit]
    if not restarts:
        return _verdict(requirement, "untested", None, bound, "no node was restarted")
    for life in restarts:
        deadline = life.ready + bound
        for observer in index.nodes:
            obs = index.life_at(observer, life.ready)
            if observer == life.node or obs is None:
                continue
            window_end = min(life.end, obs.end, index.end_ms)
            detail = {"observer": observer, "member": life.node, "ready_ms": life.ready}
            settled = _settled_alive(index.timeline(observer, life.node), life.ready, window_end)
            if settled is not None and settled <= window_end:
                tally.observe(settled - life.ready, {**detail, "seen_ms": settled})
            elif index.separated(observer, life.node, life.ready, deadline):
                tally.excluded += 1
            elif window_end < deadline:
                tally.undetermined += 1
            else:
                tally.never(window_end - life.ready, detail)
    return _timed_verdict(
        requirement, tally, "rejoin observations", "no restarted node was followed long enough"
    )
