"""The harness's own scheduling lag, watched while a scenario runs.

On an overloaded host the harness itself falls behind: its reads are served late, its
faults land late, and a node starved of CPU misses probe deadlines through no fault of
its own. A verdict about timing from such a run says nothing about the implementation.
A thread sleeps in short steps and measures how late it wakes; every wake-up later than
the threshold (the probe timeout: the scale at which a failure detector misjudges) is
recorded as a ``host-lag`` phase, and the checkers report timing failures of that run as
inconclusive rather than as a FAIL (see :func:`harness.judging.checker.checker`).
"""

from __future__ import annotations

import threading
import time
from types import TracebackType

from gossipcert.harness.history import History, now_ms

__all__ = ["LagMonitor"]

STEP_S = 0.02


class LagMonitor:
    """Context manager: while open, records wake-ups later than ``threshold_ms``."""

    def __init__(self, history: History, threshold_ms: float, step_s: float = STEP_S) -> None:
        self.history = history
        self.threshold_ms = threshold_ms
        self.step_s = step_s
        self.worst_ms = 0.0
        self.episodes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="gossipcert-lag", daemon=True)

    def __enter__(self) -> LagMonitor:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _watch(self) -> None:
        while not self._stop.is_set():
            before = time.monotonic()
            self._stop.wait(self.step_s)
            lag_ms = (time.monotonic() - before - self.step_s) * 1000.0
            self.worst_ms = max(self.worst_ms, lag_ms)
            if lag_ms > self.threshold_ms and not self._stop.is_set():
                self.episodes += 1
                end = now_ms()
                args = {"lag_ms": round(lag_ms, 1), "threshold_ms": self.threshold_ms}
                self.history.append("phase", "host-lag", args={"edge": "start", **args},
                                    time_ms=end - lag_ms)
                self.history.append("phase", "host-lag", args={"edge": "end", **args},
                                    time_ms=end)
