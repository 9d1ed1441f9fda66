"""Errors the CLI turns into one clear line and a distinct exit code, never a traceback."""

from __future__ import annotations

import errno

from gossipcert.chaos.errors import ChaosError

# Exit codes: what a CI job gates on. 1 always means the implementation failed a MUST,
# never that the harness broke.
EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_BAD_INPUT = 2
EXIT_INCOMPLETE = 3  # no MUST failed, but a claimed MUST was untested or not judged
EXIT_HARNESS_ERROR = 4  # the harness's own parts or its host failed: no verdict at all
EXIT_UNAVAILABLE = 5  # this machine cannot run the request at all (its backend is missing)
EXIT_INTERRUPTED = 130

VERDICT_EXIT = {"pass": EXIT_PASS, "fail": EXIT_FAIL, "incomplete": EXIT_INCOMPLETE,
                "error": EXIT_HARNESS_ERROR}

# Errors a socket call gets from its own host, never from the far side: out of
# descriptors, buffers, memory or local ports, or no route at all. A refused or timed-out
# connection is an answer of the node; these are not.
HOST_ERRNOS = frozenset({
    errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.EADDRNOTAVAIL,
    errno.ENETUNREACH, errno.ENETDOWN,
})
# Not EHOSTUNREACH: a stopped container's address on a Docker bridge answers with it, and
# a node that died is the node's doing.


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


class HarnessError(GossipcertError):
    """The harness's own parts failed mid-run: the link plane or the Docker API stopped
    answering, a proxy could not be made, the host ran out of something. The run says
    nothing about the implementation; its partial report has the verdict ``error``."""

    exit_code = EXIT_HARNESS_ERROR


class HostError(HarnessError):
    """A node could not be reached for a reason of the harness's host (``HOST_ERRNOS``)."""


def describe(exc: BaseException) -> str:
    """One line for an exception of any kind: its message, else its type."""
    text = " ".join(str(exc).split())
    return text if isinstance(exc, GossipcertError) and text else (
        f"{type(exc).__name__}: {text}" if text else type(exc).__name__)
