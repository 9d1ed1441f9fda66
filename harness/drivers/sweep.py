"""Find the processes a run left behind, by the run label every child carries, and tell
those of dead runs from those of runs still going.

Run labels and when a run is stale are :mod:`chaos.runlabels`'s;
:mod:`harness.drivers.clean` builds on this; nothing here imports it.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from gossipcert.chaos.runlabels import RUN_LABEL_ENV, label_stale


def labelled_processes(label: str | None = None) -> dict[int, str]:
    """``{pid: label}`` of live processes carrying a gossipcert run label (or this one)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            environ = (entry / "environ").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text()
            if ") Z " in stat:  # a zombie holds nothing
                continue
            for item in environ:
                if item.startswith(RUN_LABEL_ENV.encode() + b"="):
                    value = item.split(b"=", 1)[1].decode(errors="replace")
                    if label is None or value == label:
                        found[int(entry.name)] = value
    return found


def sweep(label: str | None = None) -> list[int]:
    """SIGKILL every labelled process (of one run, or of every run); returns their pids."""
    pids = [pid for pid in labelled_processes(label) if pid != os.getpid()]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return pids


def orphaned_processes() -> dict[int, str]:
    """Labelled processes whose harness is gone: what a run leaked. Processes of runs that
    are still going (another run on the same machine) are not counted."""
    return {pid: label for pid, label in labelled_processes().items() if label_stale(label)}
