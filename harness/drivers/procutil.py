"""Child processes that cannot outlive the harness, and free-port helpers."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

from gossipcert.harness.errors import PortInUseError

_PR_SET_PDEATHSIG = 1

# Every child process of a run carries this variable (the run label) in its environment.
RUN_LABEL_ENV = "GOSSIPCERT_RUN"


def _die_with_parent() -> None:
    """Ask the kernel to SIGKILL this child when the harness dies, even by SIGKILL."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def child_preexec(cgroup_procs: Path | None = None) -> Callable[[], None]:
    """What a child runs before exec: die with the harness, and join its cgroup (a
    process-backend node's own, so the packet plane can match what it sends)."""
    if cgroup_procs is None:
        return _die_with_parent

    def preexec() -> None:
        _die_with_parent()
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


def ensure_free(host: str, port: int, what: str) -> None:
    """Fail with one clear line when ``host:port`` is taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            raise PortInUseError(f"{host}:{port} is already in use ({what})") from None
