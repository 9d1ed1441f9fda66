"""What marks the things a run started, so ``gossipcert clean`` can find and sweep them.

A run is named by its run label, ``gc-<seed>-<pid>-<stamp>``, whose pid is the
harness's. Every child process of the run carries it in its environment
(:data:`RUN_LABEL_ENV`); every Docker object carries it as :data:`RUN_LABEL` and its owner,
``<pid>:<start time>`` (the start time guards against a reused pid), as
:data:`OWNER_LABEL`. A run is stale once the harness process that owns it is gone.

It lives in ``chaos`` because the fault planes mark what they start too (the link
plane's server, the swarm's fault agents) and ``chaos`` imports nothing of ``harness``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = [
    "NODE_LABEL", "OWNER_LABEL", "ROLE_LABEL", "RUN_LABEL", "RUN_LABEL_ENV", "label_stale",
    "new_run_label", "owner_alive", "owner_label", "process_start_time", "run_label_pid",
]

# Every child process of a run carries this variable (the run label) in its environment.
RUN_LABEL_ENV = "GOSSIPCERT_RUN"
# The Docker labels of every container, network and service a run creates; a node's
# container also names its node, and a swarm service its role.
RUN_LABEL = "gossipcert.run"
OWNER_LABEL = "gossipcert.owner"
NODE_LABEL = "gossipcert.node"
ROLE_LABEL = "gossipcert.role"  # node, agent, registry, toxiproxy


def new_run_label(seed: int) -> str:
    """A label for a new run of this process: its seed, this pid, and a stamp."""
    return f"gc-{seed}-{os.getpid()}-{int(time.time() * 1000) % 10**9}"


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields and fields[0] == "Z":
        return None
    return fields[19] if len(fields) > 19 else None


def run_label_pid(label: str) -> int | None:
    """The harness pid inside a run label ``gc-<seed>-<pid>-<stamp>``, None if not one."""
    if not label.startswith("gc-"):
        return None
    parts = label[3:].rsplit("-", 2)
    if len(parts) != 3:
        return None
    try:
        return int(parts[1])
    except ValueError:
        return None


def label_stale(label: str) -> bool:
    """Whether the harness that owns run ``label`` is gone (never this process)."""
    pid = run_label_pid(label)
    return pid is not None and pid != os.getpid() and process_start_time(pid) is None


def owner_label(pid: int | None = None) -> str:
    """The :data:`OWNER_LABEL` value of ``pid`` (this process by default)."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}:{process_start_time(pid) or 0}"


def owner_alive(owner: str) -> bool:
    """Whether the process an :data:`OWNER_LABEL` value names still runs."""
    pid_text, _, started = owner.partition(":")
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    now = process_start_time(pid)
    return now is not None and (not started or started == now)
