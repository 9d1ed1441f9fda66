"""The cluster's calls: one control client per node, and each call recorded in the history
as its invoke and its completion.

:class:`Recording` is where every part of the cluster writes: the history of the moment
(explore gives each example its own) and the round numbers reads share.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gossipcert.harness.drivers.backends import NodeAddress
from gossipcert.harness.drivers.contract import check_reply, check_undeclared, request_of
from gossipcert.harness.drivers.control_client import ControlClient, Reply
from gossipcert.harness.drivers.interface import request_for
from gossipcert.harness.history import History

__all__ = ["Calls", "Recording", "together"]


class Recording:
    """The history the cluster writes to now, and the round counter of its reads."""

    def __init__(self, history: History) -> None:
        self.history = history
        self.round = 0

    def next_round(self) -> int:
        self.round += 1
        return self.round


def together(calls: Sequence[Callable[[], None]]) -> None:
    """Run calls on threads released together by a barrier: concurrent, for real."""
    if not calls:
        return
    barrier = threading.Barrier(len(calls))

    def one(call: Callable[[], None]) -> None:
        barrier.wait()
        call()

    threads = [threading.Thread(target=one, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


class Calls:
    """Client calls to the nodes at ``addresses``; ``check`` raises a failure met on a
    background thread before each call goes out."""

    def __init__(self, recording: Recording, addresses: Mapping[str, NodeAddress],
                 check: Callable[[], None]) -> None:
        self.recording = recording
        self.addresses = addresses
        self.check = check
        self._clients: dict[str, ControlClient] = {}

    def client(self, node_id: str) -> ControlClient:
        if node_id not in self._clients:
            host, port = self.addresses[node_id].control
            self._clients[node_id] = ControlClient(host, port)
        return self._clients[node_id]

    def call(self, node_id: str, op: str, args: dict[str, Any], fn: Any = None) -> Reply:
        """Run one client call and record its invoke and completion: the contract's
        request for ``op`` and ``args`` (:func:`harness.drivers.interface.request_for`),
        or ``fn()``."""
        self.check()
        history = self.recording.history
        call = history.new_call()
        history.append("invoke", op, node=node_id, call=call, args=args)
        if fn is None:
            client = self.client(node_id)
            reply: Reply = client.request(*request_for(op, args))
        else:
            reply = fn()
        result = reply.body if isinstance(reply.body, dict) else {"body": reply.body}
        result = {**result, "status": reply.status}
        if reply.error:
            result = {**result, "harness_error": reply.error}
        if fn is None:
            broken = check_reply(op, reply.status, reply.body, reply.is_json)
            if broken:
                result = {**result, "contract": [d.describe() for d in broken]}
        history.append(reply.outcome, op, node=node_id, call=call, args=args, result=result)
        return reply

    def probe_undeclared(self, node_id: str, op: str, args: dict[str, Any]) -> list[str]:
        """Call ``op`` of a capability the manifest does not declare, recorded as an
        ``undeclared`` call: anything but a 501 is marked a contract deviation, and the
        deviations are returned (described)."""
        self.check()
        history = self.recording.history
        call = history.new_call()
        recorded = {**args, "call": op}
        history.append("invoke", "undeclared", node=node_id, call=call, args=recorded)
        reply = self.client(node_id).request(*request_of(op, args))
        result = reply.body if isinstance(reply.body, dict) else {"body": reply.body}
        result = {**result, "status": reply.status}
        broken = check_undeclared(op, reply.status, reply.body, reply.is_json)
        if broken:
            result["contract"] = [d.describe() for d in broken]
        history.append(reply.outcome, "undeclared", node=node_id, call=call, args=recorded,
                       result=result)
        return list(result.get("contract", []))

    def read_round(self, op: str, node_ids: Sequence[str]) -> dict[str, Reply]:
        """Read ``op`` on each of ``node_ids``; the reads share a round number."""
        number = self.recording.next_round()
        return {node_id: self.call(node_id, op, {"round": number}) for node_id in node_ids}

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
