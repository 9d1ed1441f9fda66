"""A cgroup (v2) per process-backend node, so the packet plane can tell a node's packets
apart by the process that sent them (``iptables -m cgroup --path``), not only by address.

Only the node's processes are moved (in the child, before exec); nothing else of the
host's cgroups changes. A run's groups live under ``gossipcert/<run label>/`` and go with
the run; :func:`sweep_cgroups` removes what dead runs left (empty groups only).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["RunCgroups", "cgroup2_root", "sweep_cgroups"]

TOP = "gossipcert"


def cgroup2_root() -> Path | None:
    """Where the cgroup v2 hierarchy is mounted and writable by us, or None."""
    try:
        mounts = Path("/proc/mounts").read_text(encoding="utf-8")
    except OSError:
        return None
    for line in mounts.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] == "cgroup2":
            root = Path(parts[1])
            if os.access(root, os.W_OK):
                return root
    return None


class RunCgroups:
    """The groups of one run: ``<root>/gossipcert/<label>/<node>``."""

    def __init__(self, root: Path, run_label: str) -> None:
        self.root = root
        self.base = root / TOP / run_label
        self.base.mkdir(parents=True, exist_ok=True)

    @classmethod
    def open(cls, run_label: str) -> RunCgroups | None:
        """The run's groups, or None where cgroup v2 is not mounted or not writable."""
        root = cgroup2_root()
        if root is None:
            return None
        try:
            return cls(root, run_label)
        except OSError:
            return None

    def path(self, node_id: str) -> str:
        """The node's group, relative to the root (as ``iptables -m cgroup`` wants it),
        created now: a rule naming it holds the group it found when it was added, so the
        group must exist before its rule and stay for the run (a restarted node joins it
        again)."""
        (self.base / node_id).mkdir(parents=True, exist_ok=True)
        return str((self.base / node_id).relative_to(self.root))

    def procs_file(self, node_id: str) -> Path:
        self.path(node_id)
        return self.base / node_id / "cgroup.procs"

    def remove(self, wait_s: float = 3.0) -> None:
        """Remove the run's groups once their processes have exited (a killed process
        group takes a moment to leave); what stays busy is left to :func:`sweep_cgroups`."""
        deadline = time.monotonic() + wait_s
        while True:
            for group in sorted(self.base.glob("*"), reverse=True):
                with contextlib.suppress(OSError):
                    group.rmdir()
            with contextlib.suppress(OSError):
                self.base.rmdir()
            if not self.base.exists() or time.monotonic() > deadline:
                return
            time.sleep(0.05)


def sweep_cgroups(stale: Callable[[str], bool]) -> list[str]:
    """Remove the (empty) groups of runs that are gone (``stale(run label)``); returns
    the run labels removed. A live run's groups are never touched: its rules hold them."""
    root = cgroup2_root()
    if root is None or not (root / TOP).is_dir():
        return []
    removed = []
    for run in (root / TOP).iterdir():
        if not run.is_dir() or not stale(run.name):
            continue
        for group in run.iterdir():
            if group.is_dir():
                with contextlib.suppress(OSError):
                    group.rmdir()
        with contextlib.suppress(OSError):
            run.rmdir()
            removed.append(run.name)
    return removed
