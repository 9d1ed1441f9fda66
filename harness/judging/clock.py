"""How a person reads a time of a run: seconds from the run's start, one decimal.

The run's origin is its history's first entry (:attr:`.index.HistoryIndex.begin_ms`);
the reports show the absolute start once. Evidence summaries and report tables say
"at 12.3 s" through :func:`run_time`, while ``details`` and ``time_ms`` stay absolute
epoch ms, for tools.
"""

from __future__ import annotations

__all__ = ["run_time", "seconds"]


def seconds(ms: float) -> str:
    """A duration in ms as seconds with one decimal: ``12.3 s``."""
    return f"{ms / 1000:.1f} s"


def run_time(time_ms: float, begin_ms: float) -> str:
    """An absolute epoch-ms time as seconds since the run began (``begin_ms``)."""
    return seconds(time_ms - begin_ms)
