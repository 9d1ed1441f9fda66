"""Discrete-event simulator: the reference core on a virtual clock and a simulated
network (latency, loss, partitions, crashes, pauses), for benchmarks at 10,000 nodes and
as the simulated driver of a cluster, answering the control API as real nodes do."""

from gossipcert.reference_node.sim.network import NetworkModel
from gossipcert.reference_node.sim.simulation import (
    DISABLED_MS,
    TIMEOUT,
    UNREACHABLE,
    DataDirState,
    LinkCounters,
    Simulation,
    TraceEntry,
    gossip_only,
)

__all__ = [
    "DISABLED_MS",
    "TIMEOUT",
    "UNREACHABLE",
    "DataDirState",
    "LinkCounters",
    "NetworkModel",
    "Simulation",
    "TraceEntry",
    "gossip_only",
]
