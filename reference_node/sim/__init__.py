"""Discrete-event simulator: the reference core on a virtual clock and a simulated
network (latency, loss, partitions, crashes), for tests and benchmarks at 10,000 nodes."""

from gossipcert.reference_node.sim.network import NetworkModel
from gossipcert.reference_node.sim.simulation import (
    DISABLED_MS,
    Simulation,
    TraceEntry,
    gossip_only,
)

__all__ = ["DISABLED_MS", "NetworkModel", "Simulation", "TraceEntry", "gossip_only"]
