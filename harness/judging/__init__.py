"""Checkers: pure functions from a history to a verdict, one per catalogue requirement.

Every checker has the signature ``check_x(history, requirement, params) -> Verdict``:
``history`` is the run's entries or their :class:`harness.judging.index.HistoryIndex`, ``params``
are the bound's names (:func:`harness.judging.bounds.derived_parameters`), and
``requirement.constants`` adds the catalogue constants.
:func:`harness.workloads.capabilities.run_checks` wires the whole catalogue to a history,
indexing it and deriving its timing's parameters once.

The checkers live with their capability (:mod:`harness.workloads.membership` and the
others, gathered in the table :mod:`harness.workloads.capabilities`); what they share is
here (:mod:`.checker`, :mod:`.models`, :mod:`.bounds`, :mod:`.verdict`), and what they
read is :mod:`harness.judging.index`. Conventions, shared by all:

* A requirement whose operations are absent from a history is ``untested`` with the
  reason, never a silent pass (``not-claimed`` when its capability is not declared,
  ``error`` when every read it needed failed).
* A pair whose deadline falls after the history ends, or after one side was killed, is
  *undetermined*: it neither passes nor fails. One first seen after its deadline, after
  a gap in the harness's own reads, is undetermined too, and keeps its requirement from
  passing (``untested``, :func:`.checker.unsettled`); a gap the node made by failing
  reads is its own, and the pair is judged late.
* A member cut off by a partition (or a one-way ``cut``, either direction) inside a
  window, and not seen in time, is *excluded* from that window: partitions and cuts are
  judged by PARTITION-HEAL, not by every other requirement. Whatever is seen in time
  counts, partition or not.
"""

from __future__ import annotations
