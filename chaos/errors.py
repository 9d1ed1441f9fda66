"""Errors of the fault planes that a user can act on (a missing tool, a refused rule, a
Toxiproxy that answered with an error).

``chaos`` imports nothing from ``harness``, so these have a base of their own; the
harness's command line and pytest plugin catch it next to their own
(``harness.errors.USER_ERRORS``) and print one line instead of a traceback.
"""

from __future__ import annotations

__all__ = ["ChaosError"]


class ChaosError(Exception):
    """Base of the fault planes' errors; ``exit_code`` is what the CLI returns for one."""

    exit_code = 2  # the CLI's "bad input" (harness.errors.EXIT_BAD_INPUT; a test keeps them equal)
