"""Lifeguard's local health awareness (docs/protocol-notes.md, "Lifeguard").

A node that misses acks may be the slow one. Its score rises on failed probes that no
helper explained with a nack and on having to refute a suspicion of itself, falls on
probes answered directly, and stretches its own probe interval and timeout by
`(score + 1)`, so a starved node probes less and accuses less.
"""

from __future__ import annotations


class Awareness:
    def __init__(self, max_multiplier: int) -> None:
        if max_multiplier < 1:
            raise ValueError(f"awareness max multiplier must be >= 1, got {max_multiplier}")
        self._max = max_multiplier - 1
        self.score = 0

    def apply(self, delta: int) -> int:
        """Move the score by `delta`, kept within [0, max_multiplier - 1]."""
        self.score = min(self._max, max(0, self.score + delta))
        return self.score

    def scale(self, duration_ms: int) -> int:
        return duration_ms * (self.score + 1)
