"""Poll a condition until it holds or time runs out: the one waiting loop of the harness.

Callers that report how long something took ("converged in 2.3 s") use the elapsed time
:func:`wait_until` returns; callers that only need to know use ``is not None``. Never
test the result for truth: a condition that already held returns ``0.0``.

A condition that can tell the wait is hopeless (the process it waits for exited) raises,
and the exception goes through to the caller unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["wait_until"]


def wait_until(
    predicate: Callable[[], object],
    timeout_s: float,
    every_s: float = 0.05,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> float | None:
    """Call ``predicate`` every ``every_s`` seconds until it returns something true.

    Returns the seconds from the start until it did, or None when ``timeout_s`` passed
    without it. ``predicate`` is always called at least once, and once more at the
    deadline, so a wait never gives up between two looks that might have succeeded.
    ``clock`` and ``sleep`` default to the wall's; a driver with a virtual clock passes
    its own.
    """
    start = clock()
    deadline = start + max(0.0, timeout_s)
    while True:
        if predicate():
            return clock() - start
        now = clock()
        if now >= deadline:
            return None
        sleep(min(max(0.0, every_s), deadline - now))
