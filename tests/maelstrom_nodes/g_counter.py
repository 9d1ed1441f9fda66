#!/usr/bin/env python3
"""Maelstrom g-counter node on Maelstrom's seq-kv service.

Each node counts its own increments in memory and acknowledges them at once; every
100 ms it publishes its count under its own key in seq-kv with a compare-and-set from
the value it last saw there (creating the key the first time; on a failed precondition
it reads the key back and tries again). Only the owner writes a key, so each key only
grows. A read is the node's own count plus every other node's key in seq-kv; if seq-kv
does not answer within a second, the read fails (temporarily unavailable) rather than
guess.
"""

from __future__ import annotations

from node_base import TEMPORARILY_UNAVAILABLE, Body, Message, Node

FLUSH_S = 0.1
KV_TIMEOUT_S = 1.0
KV = "seq-kv"
KEY_DOES_NOT_EXIST = 20
PRECONDITION_FAILED = 22

node = Node()
state = {"total": 0, "published": 0, "busy": False}


def key(node_id: str) -> str:
    return f"count-{node_id}"


def flush() -> None:
    if state["busy"] or state["total"] == state["published"]:
        return
    state["busy"] = True
    target = state["total"]

    def done(reply: Body | None) -> None:
        if reply is not None and reply.get("type") == "cas_ok":
            state["published"] = target
        elif reply is not None and reply.get("code") == PRECONDITION_FAILED:
            node.request(KV, {"type": "read", "key": key(node.node_id)}, reread, KV_TIMEOUT_S)
            return
        state["busy"] = False

    def reread(reply: Body | None) -> None:
        if reply is not None and reply.get("type") == "read_ok":
            state["published"] = int(reply["value"])
        state["busy"] = False

    node.request(KV, {"type": "cas", "key": key(node.node_id), "from": state["published"],
                      "to": target, "create_if_not_exists": True}, done, KV_TIMEOUT_S)


def add(message: Message) -> None:
    state["total"] += int(message["body"]["delta"])
    node.reply(message, {"type": "add_ok"})


def read(message: Message) -> None:
    peers = node.peers
    values: dict[str, int | None] = {}

    def one(peer: str) -> None:
        def got(reply: Body | None) -> None:
            if reply is None or (reply.get("type") == "error"
                                 and reply.get("code") != KEY_DOES_NOT_EXIST):
                values[peer] = None
            else:
                values[peer] = int(reply.get("value", 0)) if reply["type"] == "read_ok" else 0
            if len(values) == len(peers):
                answer()

        node.request(KV, {"type": "read", "key": key(peer)}, got, KV_TIMEOUT_S)

    def answer() -> None:
        if any(v is None for v in values.values()):
            node.error(message, TEMPORARILY_UNAVAILABLE, "seq-kv did not answer")
            return
        total = state["total"] + sum(v for v in values.values() if v is not None)
        node.reply(message, {"type": "read_ok", "value": total})

    if not peers:
        answer()
    for peer in peers:
        one(peer)


node.after_init(lambda: node.every(FLUSH_S, flush))
node.on("add", add)
node.on("read", read)

if __name__ == "__main__":
    node.run()
