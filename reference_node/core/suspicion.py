"""Suspicion timers.

v1 uses the fixed minimum timeout. Lifeguard (REFERENCE.md) starts at `max` and
shrinks with independent confirmations, `T(c) = max - ln(c+1)/ln(k+1) * (max - min)`;
the seam is `Suspicion.confirm` plus `deadline_ms`, which is all the node calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


def suspicion_timeout_ms(suspicion_mult: int, n: int, probe_interval_ms: int) -> int:
    """memberlist: min = SuspicionMult * max(1, log10(max(1, N))) * ProbeInterval."""
    scale = max(1.0, math.log10(max(1, n)))
    return int(suspicion_mult * scale * probe_interval_ms)


@dataclass
class Suspicion:
    member: str
    incarnation: int
    started_ms: int
    min_timeout_ms: int
    max_timeout_ms: int
    confirmations: set[str] = field(default_factory=set)

    def confirm(self, from_member: str) -> bool:
        """Record an independent suspicion of the same incarnation; True if new."""
        if from_member in self.confirmations:
            return False
        self.confirmations.add(from_member)
        return True

    def deadline_ms(self) -> int:
        # Lifeguard would compute from max_timeout_ms and len(confirmations) here.
        return self.started_ms + self.min_timeout_ms
