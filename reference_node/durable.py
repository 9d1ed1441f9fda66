"""What a node keeps across a crash, as data: the rules both drivers follow.

The runtime writes it to a `--data-dir` (`persist.py`); the simulator keeps the same
records in memory (`sim/simulation.py`), so a simulated restart finds what a real one
finds after SIGKILL. No IO here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gossipcert.reference_node.core.node import Node

COMPACT_EVERY = 1000
"""Log records after which the log is folded into a fresh snapshot."""


@dataclass
class Stored:
    """What a data dir holds when a node starts: the highest incarnation it announced,
    the last snapshot and the writes acknowledged since."""

    incarnation: int | None = None
    snapshot: dict[str, Any] | None = None
    writes: list[Any] = field(default_factory=list)
    torn_tail: bool = False


def restore_node(node: Node, stored: Stored, now_ms: int) -> None:
    """Give a new life what the last one kept: its state, then an incarnation above
    every one it used, then the writes acknowledged since the snapshot."""
    if stored.snapshot is not None:
        node.restore(stored.snapshot, now_ms)
    if stored.incarnation is not None:
        node.restore_incarnation(stored.incarnation, now_ms)
    node.restore_writes(stored.writes, now_ms)
