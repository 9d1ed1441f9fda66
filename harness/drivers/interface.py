"""The one cluster interface the interpreter drives, and the contract's calls as requests.

Two drivers implement :class:`ClusterDriver`: :class:`harness.drivers.cluster.Cluster` (real
nodes on a backend, faults through the fault planes, calls over HTTP) and
:class:`harness.drivers.simulated.SimulatedCluster` (reference cores in the discrete-event
simulator of ``reference_node.sim``, calls through the same control-API function the
real node serves, on a virtual clock). Both record the same history, so the same
checkers judge both.

A client call is named by its history operation (``put``, ``members``, ...) and its
``args`` as the history records them; :func:`request_for` turns that into the HTTP
request of the v1 contract, the one table both drivers use.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol
from urllib.parse import quote

from gossipcert.harness.drivers.control_client import Reply
from gossipcert.harness.history import History

__all__ = ["NO_LATENCY", "ClusterDriver", "Request", "request_for"]

Request = tuple[str, str, Any]  # method, path, JSON body (None for none)


def _key(args: dict[str, Any]) -> str:
    return quote(str(args["key"]), safe="")


def _name(args: dict[str, Any]) -> str:
    return quote(str(args["name"]), safe="")


def _with_context(body: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
    if args.get("context") is not None:
        body["context"] = args["context"]
    return body


_REQUESTS: dict[str, Callable[[dict[str, Any]], Request]] = {
    "node": lambda a: ("GET", "/v1/node", None),
    "members": lambda a: ("GET", "/v1/members", None),
    "kv": lambda a: ("GET", "/v1/kv", None),
    "metrics": lambda a: ("GET", "/v1/metrics", None),
    "broadcasts": lambda a: ("GET", "/v1/broadcasts", None),
    "events": lambda a: ("GET", f"/v1/events?after={int(a.get('after', 0))}", None),
    "join": lambda a: ("POST", "/v1/join", {"seeds": list(a["seeds"])}),
    "leave": lambda a: ("POST", "/v1/leave", {}),
    "broadcast": lambda a: ("POST", "/v1/broadcast", {"id": a["id"], "payload": a["payload"]}),
    "put": lambda a: ("PUT", f"/v1/kv/{_key(a)}", _with_context({"value": a["value"]}, a)),
    "get": lambda a: ("GET", f"/v1/kv/{_key(a)}", None),
    "delete": lambda a: ("DELETE", f"/v1/kv/{_key(a)}", _with_context({}, a)),
    "crdt": lambda a: ("POST", f"/v1/crdt/{_name(a)}",
                       {"type": a["type"], "op": a["op"], "value": a.get("value")}),
    "crdt_read": lambda a: ("GET", f"/v1/crdt/{_name(a)}", None),
}

# Latency comes from the link plane's proxies, or from the packet plane (netem where the
# kernel has it, else the NFQUEUE delay line), which needs root and iptables.
NO_LATENCY = ("latency needs the link plane (manifest routing: dial-map) or the packet "
              "plane's delay (root, iptables, and netem or NFQUEUE)")


def request_for(op: str, args: dict[str, Any]) -> Request:
    """The v1 request of the client call ``op`` with these history ``args``."""
    try:
        build = _REQUESTS[op]
    except KeyError:
        raise ValueError(f"no control-API call named {op!r}") from None
    return build(args)


class ClusterDriver(Protocol):
    """What the interpreter needs of a cluster, real or simulated.

    Every call, fault and node-side event goes into ``history`` with the driver's own
    clock (wall time for real nodes, virtual time in simulation). Faults return once
    they are in effect.
    """

    history: History
    node_ids: list[str]
    min_sleep_s: float  # the shortest pause between polls (0 on real clusters)

    @property
    def capabilities(self) -> list[str]: ...

    @property
    def has_link_plane(self) -> bool: ...

    @property
    def latency_unavailable(self) -> str | None:
        """Why no fault plane of this cluster can delay packets (None: one can)."""
        ...

    @property
    def gossip_key_set(self) -> bool: ...

    # time
    def clock(self) -> float: ...
    def sleep(self, seconds: float) -> None: ...

    # nodes and calls
    def live_nodes(self) -> list[str]: ...
    def call(self, node_id: str, op: str, args: dict[str, Any]) -> Reply: ...
    def together(self, calls: Sequence[Callable[[], None]]) -> None: ...
    def read_round(self, op: str) -> dict[str, Reply]: ...
    def poll_events(self) -> None: ...
    def traffic(self, periodic: bool = False) -> dict[str, Any] | None: ...

    # process faults and membership
    def kill(self, node_id: str) -> None: ...
    def restart(self, node_id: str) -> None: ...
    def pause(self, node_id: str) -> None: ...
    def resume(self, node_id: str) -> None: ...
    def leave(self, node_id: str) -> bool: ...
    def join(self, node_id: str) -> None: ...
    def start_intruder(self, node_id: str, seed_from: str) -> object: ...
    def stop_intruder(self, node_id: str) -> None: ...

    # network faults
    def plane_for(self, plane: str) -> str: ...
    def cut(self, links: list[tuple[str, str]], *, plane: str = "auto",
            groups: list[list[str]] | None = None, shape: str | None = None) -> None: ...
    def heal(self) -> None: ...
    def latency(self, links: list[tuple[str, str]], latency_ms: int,
                jitter_ms: int = 0, extra: dict[str, float] | None = None) -> None: ...
    def loss(self, links: list[tuple[str, str]], probability: float) -> None: ...
