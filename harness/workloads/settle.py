"""The settle that ends a hand-written sequence run in simulation.

A sequence drawn by :mod:`harness.workloads.strategies` (the one generator of sequences,
for ``gossipcert explore`` and the property tests alike) ends settled on its own: healed,
restarted and awaited until the cluster has converged. A sequence written by hand (a test
case, a benchmark's workload) has no such end, and many requirements are judged only once
their deadline has passed; :func:`settle_ops` is what such a sequence ends with, for
:func:`settle_ms`, so that every timed requirement's bound has run out before the final
reads. A run saves as a replay file (:mod:`harness.run.replay`) with the settle
included, so ``gossipcert replay --sim`` runs exactly what ran.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gossipcert.harness.judging.bounds import derived_parameters, evaluate
from gossipcert.harness.judging.verdict import Requirement
from gossipcert.harness.workloads import operations as o
from gossipcert.harness.workloads.faults import Heal
from gossipcert.harness.workloads.operations import Op

__all__ = ["settle_ms", "settle_ops"]


def settle_ms(timing: Mapping[str, Any], n: int, catalogue: Sequence[Requirement]) -> int:
    """Time after which every timed requirement's deadline has passed."""
    params = derived_parameters(timing, n)
    bounds = [evaluate(r.bound, {**params, **r.constants}) for r in catalogue if r.unit == "ms"]
    return int(max(bounds, default=10_000)) + 500


def settle_ops(settle: int) -> list[Op]:
    """Heal, end the workload, let every deadline pass while reading member views and kv
    digests as certify holds do (a convergence is seen when it happens, not seconds
    later), and read everything at the end."""
    return [Heal(), o.Phase("writes", "end"), o.ReadRound("broadcasts"), o.Wait(settle),
            o.ReadRound("members"), o.ReadRound("kv"), o.ReadRound("broadcasts")]
