#!/usr/bin/env python3
"""Maelstrom broadcast node that survives partitions and loss.

Every message a node learns is owed to every other node (not only its topology
neighbours) until that node acknowledges it: new messages go out at once, and every
200 ms whatever is still unacknowledged goes out again to each peer that owes an ack.
"""

from __future__ import annotations

from node_base import Message, Node

RETRY_S = 0.2

node = Node()
messages: set[int] = set()
owed: dict[str, set[int]] = {}  # peer -> messages it has not acknowledged


def learn(new: list[int], sender: str | None) -> list[int]:
    fresh = [m for m in new if m not in messages]
    messages.update(fresh)
    for peer, pending in owed.items():
        if peer != sender:
            pending.update(fresh)
    return fresh


def push(fresh: list[int], sender: str | None) -> None:
    if fresh:
        for peer in owed:
            if peer != sender:
                node.send(peer, {"type": "gossip", "messages": sorted(fresh)})


def started() -> None:
    owed.update({peer: set() for peer in node.peers})
    node.every(RETRY_S, retry)


def retry() -> None:
    for peer, pending in owed.items():
        if pending:
            node.send(peer, {"type": "gossip", "messages": sorted(pending)})


def broadcast(message: Message) -> None:
    fresh = learn([message["body"]["message"]], None)
    node.reply(message, {"type": "broadcast_ok"})
    push(fresh, None)


def gossip(message: Message) -> None:
    sender, batch = message["src"], list(message["body"]["messages"])
    fresh = learn(batch, sender)
    node.send(sender, {"type": "gossip_ok", "messages": batch})
    push(fresh, sender)


def gossip_ok(message: Message) -> None:
    owed.get(message["src"], set()).difference_update(message["body"]["messages"])


node.after_init(started)
node.on("broadcast", broadcast)
node.on("gossip", gossip)
node.on("gossip_ok", gossip_ok)
node.on("read", lambda m: node.reply(m, {"type": "read_ok", "messages": sorted(messages)}))
node.on("topology", lambda m: node.reply(m, {"type": "topology_ok"}))

if __name__ == "__main__":
    node.run()
