"""What every backend is: the addresses of a node, the interface the cluster drives, and
the optional features a backend may offer on top.

A backend declares an optional feature by implementing its protocol; the cluster reads
the declarations once, when it is built (:meth:`BackendFeatures.of`), and never probes
the backend again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from gossipcert.chaos.packet import PacketPlane, SourcePin


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


# ---- optional features ------------------------------------------------------------------


@runtime_checkable
class Prepares(Protocol):
    """Set-up of its own before any address is allocated (an image, a run network, a
    cgroup per node)."""

    def prepare(self, manifest: Any, run_label: str, run_dir: Path,
                progress: Callable[[str], None]) -> None: ...


@runtime_checkable
class PinsSources(Protocol):
    """Packet-plane pins to place before the nodes start (see :class:`chaos.packet.SourcePin`)."""

    def source_pins(self, addresses: dict[str, NodeAddress]) -> list[SourcePin]: ...


@runtime_checkable
class GivesCgroups(Protocol):
    """A cgroup of each node's own, whose processes' packets the packet plane can match."""

    def cgroup(self, node_id: str) -> str | None: ...


@runtime_checkable
class OwnsPacketPlane(Protocol):
    """A packet plane of its own (the swarm's: iptables through each host's agent), in
    place of the local one."""

    def packet_plane(self, run_label: str) -> PacketPlane: ...


class LinkServer(Protocol):
    """The link plane's server a backend opened: its API URL, where proxies listen, and
    the container it runs in when the run started one (None for a server given by URL)."""

    url: str
    listen_host: str
    container: Any

    def close(self) -> None: ...


@runtime_checkable
class OpensLinkServer(Protocol):
    """The link plane's server where the nodes can reach it: nodes that cannot reach the
    host's loopback (containers) need one on their own network."""

    def open_link_server(self, log_dir: Path, url: str | None = None) -> LinkServer: ...


@runtime_checkable
class HasTemplateValues(Protocol):
    """Launch placeholders whose values differ on this backend (``python``, ``data_dir``
    in a container); read at each launch, as ``prepare`` may fill in more."""

    template_values: dict[str, str]


@dataclass(frozen=True)
class BackendFeatures:
    """Which optional features a backend offers, each the backend itself or None."""

    prepares: Prepares | None = None
    pins_sources: PinsSources | None = None
    cgroups: GivesCgroups | None = None
    packet_plane: OwnsPacketPlane | None = None
    link_server: OpensLinkServer | None = None
    template_values: HasTemplateValues | None = None

    @classmethod
    def of(cls, backend: Backend) -> BackendFeatures:
        """Read the backend's declarations, once."""
        return cls(
            prepares=backend if isinstance(backend, Prepares) else None,
            pins_sources=backend if isinstance(backend, PinsSources) else None,
            cgroups=backend if isinstance(backend, GivesCgroups) else None,
            packet_plane=backend if isinstance(backend, OwnsPacketPlane) else None,
            link_server=backend if isinstance(backend, OpensLinkServer) else None,
            template_values=backend if isinstance(backend, HasTemplateValues) else None,
        )
