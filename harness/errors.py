"""Errors the CLI turns into one clear line and a distinct exit code, never a traceback."""

from __future__ import annotations

from gossipcert.chaos.errors import ChaosError

# Exit codes: what a CI job gates on. 1 always means the implementation failed a MUST,
# never that the harness broke.
EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_BAD_INPUT = 2
EXIT_INCOMPLETE = 3  # no MUST failed, but a claimed MUST was untested or not judged
EXIT_INTERRUPTED = 130

VERDICT_EXIT = {"pass": EXIT_PASS, "fail": EXIT_FAIL, "incomplete": EXIT_INCOMPLETE}


class GossipcertError(Exception):
    """Base of the errors a user can act on; ``exit_code`` is what the CLI returns."""

    exit_code = EXIT_BAD_INPUT


# What the command line and the pytest plugin turn into one line: the harness's own errors
# and the fault planes' (``chaos`` has a base of its own, as it imports nothing from here).
USER_ERRORS = (GossipcertError, ChaosError)


class ManifestError(GossipcertError):
    """The implementation manifest is missing, unreadable or fails the schema."""


class LaunchError(GossipcertError):
    """A node could not be launched: missing command, early exit, not ready in time."""


class PortInUseError(GossipcertError):
    """An address the run needs is already taken."""


class ToxiproxyUnavailable(GossipcertError):
    """The link plane server could not be started or reached."""
