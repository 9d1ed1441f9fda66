"""Progress for a person on stderr: lines as they happen, and where a scenario is up to
(the step, the time spent, the time its plan leaves), drawn in place on a terminal."""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from gossipcert.harness.workloads.interpreter import StepStatus

__all__ = ["NORMAL", "QUIET", "VERBOSE", "Console", "describe_step", "step_listener"]

QUIET, NORMAL, VERBOSE = 0, 1, 2
ERASE = "\r\x1b[K"  # back to the line's start, cleared to its end
TICK_S = 0.5  # how often a live line's clock is redrawn
PLAIN_EVERY_S = 5.0  # off a terminal: at most one step line this often (CI logs)


def describe_step(scenario: str, status: StepStatus, since_s: float = 0.0) -> str:
    """One status line: the scenario, the step, the time spent and the time the plan
    leaves ("at least" while awaits of an outcome remain); ``since_s`` has passed since
    ``status`` was taken."""
    elapsed = status.elapsed_s + since_s
    text = (f"{scenario or 'run'}: step {status.number}/{status.total}: {status.kind}, "
            f"{elapsed:.0f} s elapsed")
    if status.remaining_s is not None:
        left = max(0.0, status.remaining_s - since_s)
        text += f", {'at least ' if status.open_ended else 'about '}{left:.0f} s left"
    return text


class Console:
    """Progress for a person on stderr, at a verbosity: QUIET says nothing, NORMAL the
    progress lines and where a scenario is up to, VERBOSE also each step as it begins.

    On a terminal the step is one line redrawn in place (a ticker thread redraws its clock
    every TICK_S, nothing faster), erased before any other line is printed and when the
    console closes; off a terminal it is a plain line at most every PLAIN_EVERY_S, one
    per step at most, so a CI log stays readable."""

    def __init__(self, verbosity: int = NORMAL, stream: TextIO | None = None,
                 live: bool | None = None) -> None:
        self.verbosity = verbosity
        self.stream = stream if stream is not None else sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self._lock = threading.Lock()
        self._status: tuple[str, StepStatus, float] | None = None
        self._drawn = False
        self._last_plain = -PLAIN_EVERY_S
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def __call__(self, line: str) -> None:
        if self.verbosity >= NORMAL:
            self.line(line)

    def line(self, text: str) -> None:
        """Print ``text`` on a line of its own, the live line redrawn under it."""
        with self._lock:
            self._erase()
            self.stream.write(text + "\n")
            self._draw()
            self.stream.flush()

    def step(self, scenario: str, status: StepStatus | None) -> None:
        """Where ``scenario`` is up to; None: its steps are over."""
        if self.verbosity == QUIET:
            return
        if status is not None and self.verbosity >= VERBOSE:
            self.line(describe_step(scenario, status))
        if not self.live:
            now = time.monotonic()
            if (status is not None and self.verbosity == NORMAL
                    and now - self._last_plain >= PLAIN_EVERY_S):
                self._last_plain = now
                self.line(describe_step(scenario, status))
            return
        with self._lock:
            self._status = None if status is None else (scenario, status, time.monotonic())
            self._erase()
            self._draw()
            self.stream.flush()
        if status is not None and self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name="gossipcert-progress",
                                            daemon=True)
            self._ticker.start()

    def close(self) -> None:
        """Stop redrawing and leave no live line behind (also on an error or Ctrl-C)."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=2 * TICK_S)
            self._ticker = None
        with self._lock:
            self._status = None
            self._erase()
            self.stream.flush()

    def _tick(self) -> None:
        while not self._stop.wait(TICK_S):
            with self._lock:
                if self._status is not None:
                    self._erase()
                    self._draw()
                    self.stream.flush()

    def _erase(self) -> None:
        if self._drawn:
            self.stream.write(ERASE)
            self._drawn = False

    def _draw(self) -> None:
        if self._status is None or not self.live:
            return
        scenario, status, at = self._status
        width = shutil.get_terminal_size((80, 24)).columns - 1  # never wrap: \r could not
        self.stream.write(describe_step(scenario, status, time.monotonic() - at)[:width])
        self._drawn = True


def step_listener(progress: Callable[[str], None], scenario: str
                  ) -> Callable[[StepStatus | None], None] | None:
    """What hears each step of ``scenario`` begin: the progress sink's ``step``, if any."""
    on_step = getattr(progress, "step", None)
    if on_step is None:
        return None

    def listener(status: StepStatus | None) -> None:
        on_step(scenario, status)

    return listener
