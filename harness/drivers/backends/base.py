"""What every backend is: the addresses of a node and the interface the cluster drives."""

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

    def pause(self, node_id: str) -> None:
        """Freeze the node (SIGSTOP, docker pause): alive but silent, like a starved CPU."""
        ...

    def resume(self, node_id: str) -> None:
        """Undo :meth:`pause`."""
        ...

    def paused(self, node_id: str) -> bool:
        """Whether the node is frozen right now (read from the system, not remembered)."""
        ...

    def restart(self, node_id: str) -> None:
        """Start the node again with the same identity, argv, environment and data dir.

        A node still running is killed first (SIGKILL); the caller waits for it to be ready.
        """
        ...

    def netns_pid(self, node_id: str) -> int | None:
        """A pid inside the node's own network namespace (for the packet plane), or None
        when the node shares the host's namespace."""
        ...

    def stop_all(self) -> None: ...
