"""Child processes that cannot outlive the harness (the nodes of the process backend, the
link plane's server), and a free port to give one.

The kernel's die-with-parent request is :func:`adapters.common.die_with_parent`, the one
place both the harness and the bridges (which import neither ``harness`` nor ``chaos``)
can reach.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

from gossipcert.adapters.common import die_with_parent

__all__ = ["child_preexec", "free_port", "stop_process"]


def child_preexec(cgroup_procs: Path | None = None) -> Callable[[], None]:
    """What a child runs before exec: die with the harness, and join its cgroup (a
    process-backend node's own, so the packet plane can match what it sends)."""
    if cgroup_procs is None:
        return die_with_parent

    def preexec() -> None:
        die_with_parent()
        with contextlib.suppress(OSError):
            cgroup_procs.write_text(str(os.getpid()))

    return preexec


def stop_process(proc: subprocess.Popen[bytes], grace_s: float = 3.0) -> None:
    """SIGTERM the child's process group, then SIGKILL what is left after the grace time."""
    if proc.poll() is not None:
        _kill_group(proc.pid, signal.SIGKILL)
        return
    _kill_group(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace_s)
    _kill_group(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace_s)


def _kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def free_port(host: str) -> int:
    """A port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, 0))
        return int(s.getsockname()[1])

