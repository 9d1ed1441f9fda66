"""Where the host's CPU goes while a scenario runs, and whether it kept up.

A hundred nodes on two cores can use every cycle the host has. Then a node misses its
probe deadlines because it never got the CPU, and a failure-detection or convergence
bound missed says nothing about the implementation. A thread samples the host's CPU
(``/proc/stat``) once a second, and the CPU time of the harness, of the link plane
server it started and of everything else it started (the nodes, on the process backend;
on Docker the nodes run outside the harness's process tree and show in the host's total
only). Sustained saturation (:data:`SATURATED_BUSY` of every core for
:data:`SATURATED_SAMPLES` samples in a row) is recorded as a ``host-saturated`` phase,
with the share of the busy CPU the nodes under test used during it (``nodes_share``), the
CPU of the busiest node process (``busiest_node_cores``) and whether that makes the
saturation theirs (``by_nodes``: see :data:`NODES_OWN_SHARE`).
A timing failure inside a saturation the nodes did not cause is inconclusive, as one
inside the harness's own scheduling stalls (:mod:`harness.drivers.hostlag`); a node that
spins saturates the host itself and its failures stand. The totals go into the report
(``run.host_load``), which is how a benchmark tells where the time went.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from gossipcert.harness.history import History, now_ms

__all__ = ["HOST_TOO_BUSY", "NODES_OWN_SHARE", "NODE_BUSY_CORES", "HostBusy",
           "HostLoadMonitor", "cpu_by_component"]

SAMPLE_S = 1.0
SATURATED_BUSY = 0.95  # the share of all cores busy that counts as saturated
SATURATED_SAMPLES = 3  # consecutive saturated samples before it counts (not a blip)
# A saturation is the nodes' own when they used at least this share of the busy CPU
# (more than everything else together: the harness, the link plane, other tenants) and
# one node process alone kept at least NODE_BUSY_CORES of a core busy throughout. The
# second condition tells a node that spins from a cluster too large for its host: a
# gossip node's work is a few messages per probe interval, a few percent of a core (the
# reference node at 100 processes on two cores uses about 1.5% each), so a quarter of a
# core is ten times what the busiest honest node needs; a busy loop takes a whole core,
# or its fair share of one (0.4 with five spinning nodes on two cores).
NODES_OWN_SHARE = 0.5
NODE_BUSY_CORES = 0.25
# Over a wait of many seconds (a node's start), this share of all cores busy means the
# host, not the node, is why the wait ran out.
HOST_TOO_BUSY = 0.9
LINK_PLANE_MARK = b"gossipcert.chaos.toxiproxy"
_TICK = os.sysconf("SC_CLK_TCK")


def _host_times() -> tuple[float, float]:
    """(busy, total) jiffies of all cores since boot."""
    with open("/proc/stat", encoding="ascii") as f:
        cols = [float(x) for x in f.readline().split()[1:]]
    idle = cols[3] + (cols[4] if len(cols) > 4 else 0.0)  # idle + iowait
    total = sum(cols[:8])  # guest time is already counted in user
    return total - idle, total


class HostBusy:
    """How busy the host's CPUs were since this was made, and who kept them busy."""

    def __init__(self) -> None:
        self.cpus = os.cpu_count() or 1
        self._began = time.monotonic()
        try:
            self._start: tuple[float, float] | None = _host_times()
            self._procs = cpu_by_component(os.getpid())
        except OSError:
            self._start = None
            self._procs = {}

    def split(self) -> str:
        """The CPU each part of the run used since creation, as shares of all cores:
        the figures that say whether the nodes themselves saturated the host."""
        wall = max(1e-6, time.monotonic() - self._began) * self.cpus
        used = {"nodes": 0.0, "link-plane": 0.0, "harness": 0.0}
        for pid, (component, cpu) in cpu_by_component(os.getpid()).items():
            before = self._procs.get(pid)
            used[component] += cpu - (before[1] if before is not None else 0.0)
        return ", ".join(f"{name} {seconds / wall:.0%}" for name, seconds in used.items())

    def share(self) -> float:
        """The share of all cores busy since creation (0.0 where /proc cannot tell)."""
        if self._start is None:
            return 0.0
        busy, total = _host_times()
        spent = total - self._start[1]
        return (busy - self._start[0]) / spent if spent > 0 else 0.0


def _proc_stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of a live process, or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = raw[raw.rfind(b")") + 2:].split()
    return int(fields[1]), (float(fields[11]) + float(fields[12])) / _TICK


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def cpu_by_component(root: int) -> dict[int, tuple[str, float]]:
    """Every live process under ``root`` (itself included): its component (``harness``,
    ``link-plane`` or ``nodes``) and its CPU seconds so far."""
    stats: dict[int, tuple[int, float]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            found = _proc_stat(int(name))
            if found is not None:
                stats[int(name)] = found
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    out: dict[int, tuple[str, float]] = {}
    stack = [(root, "harness")]
    while stack:
        pid, component = stack.pop()
        if pid not in stats:
            continue
        if pid != root:
            component = ("link-plane" if component == "link-plane"
                         or LINK_PLANE_MARK in _cmdline(pid) else "nodes")
        out[pid] = (component, stats[pid][1])
        stack.extend((child, component) for child in children.get(pid, []))
    return out


@dataclass
class _Episode:
    """What the host and the nodes used over one run of saturated samples."""

    wall_s: float = 0.0
    busy_s: float = 0.0  # host CPU seconds, all cores
    nodes_s: float = 0.0  # the nodes' CPU seconds
    node_pids: dict[int, float] = field(default_factory=dict)  # CPU seconds per node process

    def whose(self) -> dict[str, Any]:
        """The phase arguments that say whose the saturation was: the nodes' share of the
        host's busy CPU, the busiest node process's CPU in cores, and whether that makes
        the saturation theirs (see :data:`NODES_OWN_SHARE`, :data:`NODE_BUSY_CORES`)."""
        share = min(1.0, self.nodes_s / self.busy_s) if self.busy_s > 0 else 0.0
        busiest = max(self.node_pids.values(), default=0.0) / self.wall_s if self.wall_s else 0.0
        return {"nodes_share": round(share, 3), "busiest_node_cores": round(busiest, 3),
                "by_nodes": share >= NODES_OWN_SHARE and busiest >= NODE_BUSY_CORES}


@dataclass
class _Totals:
    started: float = field(default_factory=time.monotonic)
    busy_s: float = 0.0  # host CPU seconds used, all cores
    wall_s: float = 0.0
    saturated_s: float = 0.0
    busy_max: float = 0.0
    seen: dict[int, tuple[str, float]] = field(default_factory=dict)  # pid: last reading


class HostLoadMonitor:
    """Context manager: samples the host's CPU while open; :meth:`summary` after."""

    def __init__(self, history: History, sample_s: float = SAMPLE_S) -> None:
        self.history = history
        self.sample_s = sample_s
        self.cpus = os.cpu_count() or 1
        self.episodes = 0
        self.by_nodes = 0  # episodes the nodes under test caused (known at their end)
        self._totals = _Totals()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="gossipcert-load",
                                        daemon=True)
        self._base: dict[int, float] = {}

    def __enter__(self) -> HostLoadMonitor:
        with contextlib.suppress(OSError):
            # CPU spent before the run (the cluster's start) is not the run's.
            self._base = {pid: cpu for pid, (_, cpu) in cpu_by_component(os.getpid()).items()}
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _watch(self) -> None:
        try:
            busy0, total0 = _host_times()
        except OSError:
            return  # no /proc: nothing to tell
        run = 0  # consecutive saturated samples
        episode = _Episode()  # what the current run of saturated samples used
        while not self._stop.wait(self.sample_s):
            busy1, total1 = _host_times()
            share = (busy1 - busy0) / (total1 - total0) if total1 > total0 else 0.0
            elapsed = (total1 - total0) / _TICK / self.cpus
            busy0, total0 = busy1, total1
            t = self._totals
            t.busy_s += (share * elapsed * self.cpus)
            t.wall_s += elapsed
            t.busy_max = max(t.busy_max, share)
            steps: dict[int, float] = {}  # CPU seconds each node process used this sample
            for pid, reading in cpu_by_component(os.getpid()).items():
                before = t.seen[pid][1] if pid in t.seen else self._base.get(pid, 0.0)
                if reading[0] == "nodes":
                    steps[pid] = max(0.0, reading[1] - before)
                t.seen[pid] = reading
            if share >= SATURATED_BUSY:
                run += 1
                t.saturated_s += elapsed
                episode.wall_s += elapsed
                episode.busy_s += share * elapsed * self.cpus
                episode.nodes_s += sum(steps.values())
                for pid, used in steps.items():
                    episode.node_pids[pid] = episode.node_pids.get(pid, 0.0) + used
                if run == SATURATED_SAMPLES:
                    start_ms = now_ms() - SATURATED_SAMPLES * elapsed * 1000.0
                    self.episodes += 1
                    self.history.append("phase", "host-saturated", time_ms=start_ms,
                                        args={"edge": "start", "busy": round(share, 3),
                                              "cpus": self.cpus,
                                              "threshold_busy": SATURATED_BUSY,
                                              "samples": SATURATED_SAMPLES,
                                              **episode.whose()})
            else:
                if run >= SATURATED_SAMPLES:
                    self._end_episode(episode, busy=round(share, 3))
                run = 0
                episode = _Episode()
        if run >= SATURATED_SAMPLES:
            self._end_episode(episode)

    def _end_episode(self, episode: _Episode, **extra: Any) -> None:
        whose = episode.whose()
        self.by_nodes += int(whose["by_nodes"])
        self.history.append("phase", "host-saturated",
                            args={"edge": "end", **extra, "cpus": self.cpus,
                                  **self._shares(), **whose})

    def _component_cpu(self) -> dict[str, float]:
        """CPU seconds per component since the monitor opened, from the last readings."""
        out = {"harness": 0.0, "link-plane": 0.0, "nodes": 0.0}
        for pid, (component, cpu) in self._totals.seen.items():
            out[component] += max(0.0, cpu - self._base.get(pid, 0.0))
        return out

    def _shares(self) -> dict[str, float]:
        """CPU seconds per component since the monitor opened."""
        return {f"{k.replace('-', '_')}_cpu_s": round(v, 1)
                for k, v in self._component_cpu().items()}

    def summary(self) -> dict[str, Any]:
        """What the report keeps (``run.host_load``): CPU seconds per component and of
        the whole host, the wall time sampled, and how long the host was saturated."""
        t = self._totals
        return {
            "cpus": self.cpus,
            "sampled_s": round(t.wall_s, 1),
            "host_busy_cpu_s": round(t.busy_s, 1),
            "host_busy_mean": round(t.busy_s / (t.wall_s * self.cpus), 3) if t.wall_s else 0.0,
            "host_busy_max": round(t.busy_max, 3),
            "saturated_s": round(t.saturated_s, 1),
            "saturation_episodes": self.episodes,
            **self._shares(),
        }
