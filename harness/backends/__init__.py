"""Backends run nodes somewhere (local processes, Docker containers) behind one interface."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class NodeAddress:
    node_id: str
    gossip: tuple[str, int]
    control: tuple[str, int]

    @property
    def gossip_addr(self) -> str:
        return f"{self.gossip[0]}:{self.gossip[1]}"


class Backend(Protocol):
    name: str

    def allocate(self, node_ids: list[str], base_port: int | None) -> dict[str, NodeAddress]:
        """Choose (and check) the addresses of every node before any starts."""
        ...

    def start(self, addr: NodeAddress, argv: list[str], env: dict[str, str],
              cwd: str | None, log_dir: Path) -> None: ...

    def exited(self, node_id: str) -> int | None:
        """The exit code if the node is gone, else None."""
        ...

    def stderr_tail(self, node_id: str, lines: int = 10) -> str: ...

    def kill(self, node_id: str) -> None: ...

    def stop_all(self) -> None: ...


def make_backend(name: str) -> Backend:
    from harness.errors import GossipcertError

    if name == "process":
        from harness.backends.process import ProcessBackend

        return ProcessBackend()
    raise GossipcertError(f"unknown backend {name!r} (available: process)")
