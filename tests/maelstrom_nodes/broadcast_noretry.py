#!/usr/bin/env python3
"""Maelstrom broadcast node that sends each message once and never retries.

A new message (from a client or a neighbour) goes once to every topology neighbour but
its sender; nothing is acknowledged and nothing is sent again, so a message sent into a
cut link is lost for good. Correct on a network that loses nothing, wrong under
partitions: the harness must fail it (BCAST-DELIVERY).
"""

from __future__ import annotations

from node_base import Message, Node

node = Node()
messages: set[int] = set()
neighbours: list[str] = []


def spread(fresh: int, sender: str | None) -> None:
    for peer in neighbours or node.peers:
        if peer != sender:
            node.send(peer, {"type": "gossip", "message": fresh})


def broadcast(message: Message) -> None:
    value = message["body"]["message"]
    node.reply(message, {"type": "broadcast_ok"})
    if value not in messages:
        messages.add(value)
        spread(value, None)


def gossip(message: Message) -> None:
    value = message["body"]["message"]
    if value not in messages:
        messages.add(value)
        spread(value, message["src"])


def topology(message: Message) -> None:
    neighbours[:] = message["body"]["topology"].get(node.node_id, [])
    node.reply(message, {"type": "topology_ok"})


node.on("broadcast", broadcast)
node.on("gossip", gossip)
node.on("topology", topology)
node.on("read", lambda m: node.reply(m, {"type": "read_ok", "messages": sorted(messages)}))

if __name__ == "__main__":
    node.run()
