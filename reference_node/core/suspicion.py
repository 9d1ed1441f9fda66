"""Suspicion timers with Lifeguard's confirmations (docs/protocol-notes.md, "Lifeguard").

A suspicion starts at `max` and shrinks as independent members report the same
suspicion: `T(c) = max - ln(c+1)/ln(k+1) * (max - min)`, floored at `min`, where `k`
confirmations are expected. A lone suspecter (perhaps the slow one) waits long; a crash
seen by everyone is declared quickly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


def suspicion_timeout_ms(suspicion_mult: int, n: int, probe_interval_ms: int) -> int:
    """memberlist: min = SuspicionMult * max(1, log10(max(1, N))) * ProbeInterval."""
    scale = max(1.0, math.log10(max(1, n)))
    return int(suspicion_mult * scale * probe_interval_ms)


def expected_confirmations(suspicion_mult: int, n: int) -> int:
    """Lifeguard's k = SuspicionMult - 2, or 0 when fewer than k others could confirm
    (`n - 2 < k`: neither the suspect nor the suspecter can)."""
    k = suspicion_mult - 2
    return 0 if n - 2 < k else max(0, k)


def lifeguard_timeout_ms(min_ms: int, max_ms: int, k: int, confirmations: int) -> int:
    """`T(c)`; with nobody expected to confirm (k < 1) the timer is simply `min`."""
    if k < 1:
        return min_ms
    fraction = math.log(confirmations + 1) / math.log(k + 1)
    raw = max_ms - fraction * (max_ms - min_ms)
    return max(min_ms, math.floor(raw))


@dataclass
class Suspicion:
    """One running suspicion. `origin` is the member whose report started it: it is
    not independent of itself, so it never counts as a confirmation."""

    member: str
    incarnation: int
    started_ms: int
    min_timeout_ms: int
    max_timeout_ms: int
    expected: int = 0
    origin: str = ""
    confirmations: set[str] = field(default_factory=set)

    def confirm(self, from_member: str) -> bool:
        """Record an independent suspicion of the same incarnation; True if new.
        Confirmations beyond `k` change nothing, so they are not re-gossiped."""
        if (
            from_member == self.origin
            or from_member in self.confirmations
            or len(self.confirmations) >= self.expected
        ):
            return False
        self.confirmations.add(from_member)
        return True

    def timeout_ms(self) -> int:
        return lifeguard_timeout_ms(
            self.min_timeout_ms, self.max_timeout_ms, self.expected, len(self.confirmations)
        )

    def deadline_ms(self) -> int:
        return self.started_ms + self.timeout_ms()
