"""Backends run nodes somewhere (local processes, Docker containers, Docker Swarm services)
behind one interface."""

from __future__ import annotations

from gossipcert.harness.drivers.backends.base import Backend, NodeAddress

__all__ = ["Backend", "NodeAddress", "make_backend"]


def make_backend(name: str) -> Backend:
    from gossipcert.harness.errors import GossipcertError

    if name == "process":
        from gossipcert.harness.drivers.backends.process import ProcessBackend

        return ProcessBackend()
    if name == "docker":
        from gossipcert.harness.drivers.backends.docker import DockerBackend

        return DockerBackend()
    if name == "swarm":
        from gossipcert.harness.drivers.backends.swarm import SwarmBackend

        return SwarmBackend()
    raise GossipcertError(f"unknown backend {name!r} (available: process, docker, swarm)")
