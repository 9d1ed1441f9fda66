"""Hybrid logical clock (Kulkarni et al. 2014): timestamps that follow wall time but
never go backwards and always order a receive after its send."""

from __future__ import annotations

from typing import NamedTuple


class Timestamp(NamedTuple):
    wall_ms: int
    logical: int


class HybridClock:
    """Holds the last timestamp issued; physical time is passed in by the caller."""

    def __init__(self) -> None:
        self._last = Timestamp(0, 0)

    @property
    def last(self) -> Timestamp:
        return self._last

    def now(self, physical_ms: int) -> Timestamp:
        """A timestamp for a local or send event, strictly above every earlier one."""
        wall, logical = self._last
        if physical_ms > wall:
            self._last = Timestamp(physical_ms, 0)
        else:
            self._last = Timestamp(wall, logical + 1)
        return self._last

    def observe(self, remote: Timestamp, physical_ms: int) -> Timestamp:
        """Merge a timestamp carried by a received message."""
        wall, logical = self._last
        new_wall = max(wall, remote.wall_ms, physical_ms)
        if new_wall == wall and new_wall == remote.wall_ms:
            new_logical = max(logical, remote.logical) + 1
        elif new_wall == wall:
            new_logical = logical + 1
        elif new_wall == remote.wall_ms:
            new_logical = remote.logical + 1
        else:
            new_logical = 0
        self._last = Timestamp(new_wall, new_logical)
        return self._last
