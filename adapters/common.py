"""What every bridge needs the same way: its argument parsing of addresses, the contract's
error, and a system-under-test child that cannot outlive its bridge.

Bridges import nothing of the harness nor of ``chaos``, so :func:`die_with_parent` lives
here, and the harness's own children (``chaos.procutil``) use this one too."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import signal

__all__ = ["ContractError", "address_arg", "die_with_parent"]

_PR_SET_PDEATHSIG = 1


class ContractError(Exception):
    """A contract call that ends in an HTTP error ``{error, message}``."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


def address_arg(text: str) -> tuple[str, int]:
    """``HOST:PORT`` for argparse (``type=``): a bad one is a usage error naming it."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def die_with_parent() -> None:
    """In the system under test, before exec: SIGKILL when the bridge dies, however it
    dies (``preexec_fn``)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
