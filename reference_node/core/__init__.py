"""Sans-IO protocol core of the reference node.

Nothing in this package touches sockets, clocks, threads or the global random
generator: every input carries `now_ms`, every output is an effect drained with
`Node.take_effects()`. The asyncio runtime and a future simulator drive the same core.
"""

from gossipcert.reference_node.core.config import NodeConfig
from gossipcert.reference_node.core.effects import Effect, Observed, SendMessage
from gossipcert.reference_node.core.events import BroadcastEvent, Event, MemberEvent
from gossipcert.reference_node.core.membership import Status
from gossipcert.reference_node.core.node import Node

__all__ = [
    "BroadcastEvent",
    "Effect",
    "Event",
    "MemberEvent",
    "Node",
    "NodeConfig",
    "Observed",
    "SendMessage",
    "Status",
]
