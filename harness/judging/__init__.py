"""Checkers: pure functions from a history to a verdict, one per catalogue requirement.

Every checker has the signature ``check_x(history, requirement, params) -> Verdict``:
``history`` is the run's entries or their :class:`harness.judging.index.HistoryIndex`, ``params``
are the bound's names (:func:`harness.judging.bounds.derived_parameters`), and
``requirement.constants`` adds the catalogue constants. :func:`run_checks` wires the
whole catalogue to a history, indexing it once.

The checkers live by area (:mod:`.membership`, :mod:`.failure`, :mod:`.dissemination`,
:mod:`.state`, :mod:`.traffic`, :mod:`.security`); what they share is in
:mod:`.judging`, and what they read is :mod:`harness.judging.index`. Conventions, shared by all:

* A requirement whose operations are absent from a history is ``untested`` with the
  reason, never a silent pass (``not-claimed`` when its capability is not declared,
  ``error`` when every read it needed failed).
* A pair whose deadline falls after the history ends, or after one side was killed, is
  *undetermined*: it neither passes nor fails.
* A member cut off by a partition (or a one-way ``cut``, either direction) inside a
  window, and not seen in time, is *excluded* from that window: partitions and cuts are
  judged by PARTITION-HEAL, not by every other requirement. Whatever is seen in time
  counts, partition or not.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gossipcert.harness.history import Entry
from gossipcert.harness.judging.bounds import BoundError, derived_parameters
from gossipcert.harness.judging.checker import Checker, bound_of, make_verdict
from gossipcert.harness.judging.dissemination import (
    check_broadcast_delivery,
    check_broadcast_latency,
    check_messages_per_op,
)
from gossipcert.harness.judging.failure import (
    check_dead_stays_dead,
    check_detection_speed,
    check_failure_detection,
    check_no_false_positive,
    check_no_false_positive_latency,
    check_no_false_positive_loss,
    check_no_false_positive_pause,
)
from gossipcert.harness.judging.index import HistoryIndex
from gossipcert.harness.judging.membership import (
    check_member_join,
    check_member_leave,
    check_member_rejoin,
    check_partition_heal,
)
from gossipcert.harness.judging.models import REALTIME_TOLERANCE_MS
from gossipcert.harness.judging.security import check_wrong_key_rejected
from gossipcert.harness.judging.state import (
    check_crdt_g_counter,
    check_crdt_lww_register,
    check_crdt_or_set,
    check_crdt_pn_counter,
    check_deletes_stay_deleted,
    check_kv_after_partition,
    check_kv_after_restart,
    check_kv_convergence,
    check_kv_lww,
    check_kv_mv,
    check_no_lost_write,
)
from gossipcert.harness.judging.traffic import check_timing_traffic
from gossipcert.harness.judging.verdict import Requirement, Verdict

__all__ = [
    "CHECKERS",
    "REALTIME_TOLERANCE_MS",
    "Checker",
    "resolve_checker",
    "run_checks",
    "check_broadcast_delivery",
    "check_broadcast_latency",
    "check_crdt_g_counter",
    "check_crdt_lww_register",
    "check_crdt_or_set",
    "check_crdt_pn_counter",
    "check_dead_stays_dead",
    "check_deletes_stay_deleted",
    "check_detection_speed",
    "check_failure_detection",
    "check_kv_after_partition",
    "check_kv_after_restart",
    "check_kv_convergence",
    "check_kv_lww",
    "check_kv_mv",
    "check_member_join",
    "check_member_leave",
    "check_member_rejoin",
    "check_messages_per_op",
    "check_no_false_positive",
    "check_no_false_positive_latency",
    "check_no_false_positive_loss",
    "check_no_false_positive_pause",
    "check_no_lost_write",
    "check_partition_heal",
    "check_timing_traffic",
    "check_wrong_key_rejected",
]

CHECKERS: dict[str, Checker] = {
    "check_member_join": check_member_join,
    "check_member_leave": check_member_leave,
    "check_member_rejoin": check_member_rejoin,
    "check_failure_detection": check_failure_detection,
    "check_detection_speed": check_detection_speed,
    "check_dead_stays_dead": check_dead_stays_dead,
    "check_no_false_positive": check_no_false_positive,
    "check_no_false_positive_latency": check_no_false_positive_latency,
    "check_no_false_positive_loss": check_no_false_positive_loss,
    "check_no_false_positive_pause": check_no_false_positive_pause,
    "check_partition_heal": check_partition_heal,
    "check_broadcast_delivery": check_broadcast_delivery,
    "check_broadcast_latency": check_broadcast_latency,
    "check_messages_per_op": check_messages_per_op,
    "check_kv_convergence": check_kv_convergence,
    "check_kv_after_partition": check_kv_after_partition,
    "check_kv_after_restart": check_kv_after_restart,
    "check_kv_lww": check_kv_lww,
    "check_kv_mv": check_kv_mv,
    "check_crdt_g_counter": check_crdt_g_counter,
    "check_crdt_pn_counter": check_crdt_pn_counter,
    "check_crdt_or_set": check_crdt_or_set,
    "check_crdt_lww_register": check_crdt_lww_register,
    "check_no_lost_write": check_no_lost_write,
    "check_deletes_stay_deleted": check_deletes_stay_deleted,
    "check_wrong_key_rejected": check_wrong_key_rejected,
    "check_timing_traffic": check_timing_traffic,
}


def resolve_checker(name: str) -> Checker:
    """The checker a catalogue entry names; KeyError when there is none."""
    try:
        return CHECKERS[name]
    except KeyError:
        known = ", ".join(sorted(CHECKERS))
        raise KeyError(f"no checker named {name!r} (known: {known})") from None


def run_checks(
    history: Sequence[Entry],
    catalogue: Sequence[Requirement],
    progress: Callable[[str], None] | None = None,
    *,
    index: HistoryIndex | None = None,
) -> list[Verdict]:
    """One verdict per requirement, in catalogue order; a checker that raises yields error.

    ``progress``, when given, hears one line per requirement checked (long histories).
    ``index``, when given, is ``history``'s index, built by the caller to pass on to the
    reports as well (:meth:`harness.judging.index.HistoryIndex.build`); else it is built here.
    """
    if index is None:
        index = HistoryIndex.build(history)
    # Derived once per judged history, from the timing in its meta, for every checker.
    params = derived_parameters(index.timing, len(index.nodes))
    verdicts: list[Verdict] = []
    for number, requirement in enumerate(catalogue, 1):
        bound: float | None = None
        try:
            bound = bound_of(requirement, params)
            check = resolve_checker(requirement.checker)
            verdicts.append(check(index, requirement, params))
        except BoundError as exc:
            verdicts.append(make_verdict(requirement, "error", None, None, f"bad bound: {exc}"))
        except Exception as exc:  # a checker bug must not hide the other verdicts
            verdicts.append(
                make_verdict(
                    requirement,
                    "error",
                    None,
                    bound,
                    f"checker {requirement.checker} raised {type(exc).__name__}: {exc}",
                )
            )
        if progress is not None:
            progress(f"checked {number}/{len(catalogue)} {requirement.id}: {verdicts[-1].status}")
    return verdicts
