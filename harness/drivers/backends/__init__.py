"""Backends run nodes somewhere (local processes, Docker containers, Docker Swarm services)
behind one interface.

:data:`BACKENDS` is the one list of them: the command line's ``--backend`` choices and
help, and every check of a backend name, read it. ``simulation`` is not among them: a
replay file may name it (the run was in the simulator) but no cluster runs on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gossipcert.harness.drivers.backends.base import Backend, BackendFeatures, NodeAddress

__all__ = [
    "BACKENDS", "SIMULATION", "Backend", "BackendFeatures", "BackendKind", "NodeAddress",
    "backends_help", "make_backend", "unknown_backend",
]

# The pseudo-backend of runs in the simulator: valid in a replay file, never for a cluster.
SIMULATION = "simulation"


@dataclass(frozen=True)
class BackendKind:
    """One backend: its name, the manifest's launch section it runs (``process`` or
    ``docker``), what it is in one line, and how to make one."""

    name: str
    launch: str
    description: str
    make: Callable[[], Backend]


def _process() -> Backend:
    from gossipcert.harness.drivers.backends.process import ProcessBackend

    return ProcessBackend()


def _docker() -> Backend:
    from gossipcert.harness.drivers.backends.docker import DockerBackend

    return DockerBackend()


def _swarm() -> Backend:
    from gossipcert.harness.drivers.backends.swarm import SwarmBackend

    return SwarmBackend()


BACKENDS: dict[str, BackendKind] = {kind.name: kind for kind in (
    BackendKind("process", "process", "local processes", _process),
    BackendKind("docker", "docker", "Docker containers", _docker),
    BackendKind("swarm", "docker", "Docker Swarm services", _swarm),
)}


def unknown_backend(name: str) -> str:
    """The one line that refuses a backend name not in :data:`BACKENDS`."""
    return f"unknown backend {name!r} (available: {', '.join(BACKENDS)})"


def backends_help(default: str) -> str:
    """``--backend``'s help: where nodes run, each backend in a few words."""
    kinds = ", ".join(f"{k.name} ({k.description})" for k in BACKENDS.values())
    return f"where nodes run: {kinds}; default: {default}"


def make_backend(name: str) -> Backend:
    from gossipcert.harness.errors import GossipcertError

    if name not in BACKENDS:
        raise GossipcertError(unknown_backend(name))
    return BACKENDS[name].make()
