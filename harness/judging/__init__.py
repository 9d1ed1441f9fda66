"""Checkers: pure functions from a history to a verdict, one per catalogue requirement.

Every checker has the signature ``check_x(history, requirement, params) -> Verdict``:
``history`` is the run's entries or their :class:`harness.judging.index.HistoryIndex`, ``params``
are the bound's names (:func:`harness.judging.bounds.derived_parameters`), and
``requirement.constants`` adds the catalogue constants. :func:`run_checks` wires the
whole catalogue to a history, indexing it and deriving its timing's parameters once.

The checkers live with their capability (:mod:`harness.workloads.membership` and the
others, gathered in the table :mod:`harness.workloads.capabilities`); what they share is
here (:mod:`.checker`, :mod:`.models`, :mod:`.bounds`, :mod:`.verdict`), and what they
read is :mod:`harness.judging.index`. Conventions, shared by all:

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
from gossipcert.harness.judging.index import HistoryIndex
from gossipcert.harness.judging.models import REALTIME_TOLERANCE_MS
from gossipcert.harness.judging.verdict import Requirement, Verdict

__all__ = [
    "REALTIME_TOLERANCE_MS",
    "Checker",
    "resolve_checker",
    "run_checks",
]


def resolve_checker(name: str) -> Checker:
    """The checker a catalogue entry names, from the capabilities table; KeyError when
    there is none. (The table is imported here, not at the top: its capability modules
    build on this package's shared parts, which importing them loads first.)"""
    from gossipcert.harness.workloads.capabilities import CHECKERS

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
