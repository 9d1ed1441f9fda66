"""Each node a local subprocess on its own loopback address (127.0.0.2, 127.0.0.3, ...).

An implementation that takes no dial map is faulted by the packet plane, which needs to
tell its nodes' packets apart: each node then runs in a cgroup of its own
(:mod:`harness.drivers.cgroups`), and :meth:`ProcessBackend.source_pins` names what the plane
pins (the TCP source of each node's cgroup, rewritten to the node's own address).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gossipcert.chaos.packet import SourcePin, unavailable_reason
from gossipcert.chaos.procutil import child_preexec, free_port, stop_process
from gossipcert.harness.drivers.backends.base import NodeAddress
from gossipcert.harness.drivers.cgroups import RunCgroups
from gossipcert.harness.errors import LaunchError, PortInUseError


def process_state(pid: int) -> str | None:
    """The one-letter state of ``pid`` from ``/proc`` (R, S, T, Z...), None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def ensure_free(host: str, port: int, what: str) -> None:
    """Fail with one clear line when ``host:port`` is taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            raise PortInUseError(f"{host}:{port} is already in use ({what})") from None


def loopback_host(index: int) -> str:
    """The i-th node's own address; the whole 127/8 block is loopback on Linux."""
    return f"127.0.0.{index + 2}"


class ProcessBackend:
    name = "process"

    def __init__(self) -> None:
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._stderr: dict[str, Path] = {}
        # How each node was launched, so a restart is the same node again.
        self._launch: dict[str, tuple[NodeAddress, list[str], dict[str, str], str | None,
                                      Path]] = {}
        self.cgroups: RunCgroups | None = None

    def prepare(self, manifest: Any, run_label: str, run_dir: Path,
                progress: Callable[[str], None]) -> None:
        """A cgroup per node when the IUT dials its peers itself (no dial map) and the
        packet plane can work here (root, iptables, cgroup v2 writable): without the
        plane, nothing would pin the nodes' sources, and the run goes on without it."""
        if manifest.accepts_dial_map or os.geteuid() != 0 or unavailable_reason() is not None:
            return
        self.cgroups = RunCgroups.open(run_label)

    def source_pins(self, addresses: dict[str, NodeAddress]) -> list[SourcePin]:
        """What the packet plane must pin before the nodes start (none without cgroups)."""
        if self.cgroups is None:
            return []
        return [SourcePin(node_id, self.cgroups.path(node_id), addr.gossip[0])
                for node_id, addr in sorted(addresses.items())]

    def cgroup(self, node_id: str) -> str | None:
        return None if self.cgroups is None else self.cgroups.path(node_id)

    def allocate(self, node_ids: list[str], base_port: int | None) -> dict[str, NodeAddress]:
        out = {}
        for i, node_id in enumerate(node_ids):
            host = loopback_host(i)
            if base_port is None:
                gossip, control = free_port(host), free_port(host)
                while control == gossip:
                    control = free_port(host)
            else:
                gossip, control = base_port, base_port + 1
                ensure_free(host, gossip, f"gossip port of {node_id}")
                ensure_free(host, control, f"control port of {node_id}")
            out[node_id] = NodeAddress(node_id, (host, gossip), (host, control))
        return out

    def start(self, addr: NodeAddress, argv: list[str], env: dict[str, str],
              cwd: str | None, log_dir: Path) -> None:
        self._launch[addr.node_id] = (addr, list(argv), dict(env), cwd, log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        stdout_path, stderr_path = log_dir / "stdout.log", log_dir / "stderr.log"
        self._stderr[addr.node_id] = stderr_path
        with stdout_path.open("ab") as out, stderr_path.open("ab") as err:
            try:
                proc = subprocess.Popen(
                    argv,
                    stdout=out,
                    stderr=err,
                    stdin=subprocess.DEVNULL,
                    env={**os.environ, **env},
                    cwd=cwd,
                    start_new_session=True,
                    preexec_fn=child_preexec(
                        None if self.cgroups is None
                        else self.cgroups.procs_file(addr.node_id)),
                )
            except FileNotFoundError:
                raise LaunchError(
                    f"node {addr.node_id}: launch command {argv[0]!r} not found"
                ) from None
            except PermissionError:
                raise LaunchError(
                    f"node {addr.node_id}: launch command {argv[0]!r} is not executable"
                ) from None
        self._procs[addr.node_id] = proc

    def exited(self, node_id: str) -> int | None:
        proc = self._procs.get(node_id)
        return None if proc is None else proc.poll()

    def pid(self, node_id: str) -> int:
        return self._procs[node_id].pid

    def stderr_tail(self, node_id: str, lines: int = 10) -> str:
        path = self._stderr.get(node_id)
        if path is None or not path.exists():
            return ""
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        return "\n".join(text[-lines:])

    def kill(self, node_id: str) -> None:
        proc = self._procs[node_id]
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def _signal_group(self, node_id: str, sig: signal.Signals) -> None:
        proc = self._procs[node_id]
        if proc.poll() is not None:
            raise LaunchError(f"node {node_id} is not running (exit code {proc.returncode})")
        # The node leads its own session (start_new_session), so its group is its pid:
        # helpers it forked freeze and thaw with it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)

    def pause(self, node_id: str) -> None:
        self._signal_group(node_id, signal.SIGSTOP)

    def resume(self, node_id: str) -> None:
        self._signal_group(node_id, signal.SIGCONT)

    def paused(self, node_id: str) -> bool:
        """State ``T`` (stopped) in ``/proc/<pid>/stat``."""
        proc = self._procs.get(node_id)
        if proc is None or proc.poll() is not None:
            return False
        return process_state(proc.pid) in ("T", "t")

    def restart(self, node_id: str) -> None:
        if node_id not in self._launch:
            raise LaunchError(f"node {node_id} was never started")
        proc = self._procs[node_id]
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        addr, argv, env, cwd, log_dir = self._launch[node_id]
        self.start(addr, argv, env, cwd, log_dir)

    def netns_pid(self, node_id: str) -> int | None:
        return None  # every node shares the host's namespace, on its own 127.0.0.x

    def stop_all(self) -> None:
        for proc in self._procs.values():
            if proc.poll() is None:  # a paused node would sit out SIGTERM's grace time
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGCONT)
            stop_process(proc)
        if self.cgroups is not None:
            self.cgroups.remove()
