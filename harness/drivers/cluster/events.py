"""The cluster's node-side events: each live node's ``GET /v1/events`` read on a background
thread and copied into the history, and the first failure of the harness that thread
meets, handed to the main thread at its next call or sleep.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping

from gossipcert.harness.drivers.backends import NodeAddress
from gossipcert.harness.drivers.cluster.calls import Recording
from gossipcert.harness.drivers.contract import check_reply
from gossipcert.harness.drivers.control_client import ControlClient, Reply
from gossipcert.harness.errors import HarnessError
from gossipcert.harness.history import History, now_ms

__all__ = ["EVENT_POLL_PER_NODE_S", "EVENT_POLL_S", "EventPoller"]

# How often every node's events are read: at least this often, and at most one request
# per node every this many seconds times the cluster's size.
EVENT_POLL_S = 0.2
EVENT_POLL_PER_NODE_S = 0.01


class EventPoller:
    """Reads the events of ``live_nodes()`` into the recording's history."""

    def __init__(self, recording: Recording, addresses: Mapping[str, NodeAddress],
                 live_nodes: Callable[[], list[str]], every_s: float) -> None:
        self.recording = recording
        self.addresses = addresses
        self.live_nodes = live_nodes
        # Each poll is a request to every node: at a hundred nodes, five a second each
        # would cost the nodes more CPU than their gossip. Events carry the node's own
        # time, so a slower poll loosens only the ``polled_ms`` upper bound.
        self.every_s = every_s
        # Polls append under this lock, so a switch of history never cuts one in two.
        self.lock = threading.Lock()
        self._cursor: dict[str, int] = {}
        self._clients: dict[str, ControlClient] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        # The first failure of the harness's own parts seen on the poller's thread: the
        # run stops at the next call or sleep of the main thread.
        self._failure: HarnessError | None = None
        self._failed = threading.Event()
        # (history, node) pairs whose events already broke the contract: one record each.
        self._broke: set[tuple[int, str]] = set()

    def poll(self) -> None:
        """Copy new node-side events of every live node into the history."""
        with self.lock:
            history = self.recording.history
            for node_id in self.live_nodes():
                if node_id not in self._clients:
                    host, port = self.addresses[node_id].control
                    self._clients[node_id] = ControlClient(host, port)
                client = self._clients[node_id]
                after = self._cursor.get(node_id, 0)
                while True:
                    reply = client.events(after)
                    if not reply.ok or not isinstance(reply.body, dict):
                        break
                    if self._broken(history, node_id, after, reply):
                        break
                    events = reply.body.get("events") or []
                    polled = now_ms()  # the harness's upper bound on every event read here
                    for event in events:
                        history.append(
                            "event", str(event.get("kind", "unknown")), node=node_id,
                            args={**event, "polled_ms": polled},
                            time_ms=float(event.get("at_ms", 0)),
                        )
                    after = int(reply.body.get("next", after))
                    if not events:
                        break
                self._cursor[node_id] = after

    def _broken(self, history: History, node_id: str, after: int, reply: Reply) -> bool:
        """Whether the events answer breaks the contract: then none of it is copied (its
        times cannot be trusted to be what they claim), and the first such answer of each
        node is recorded as an ``events`` call for the checkers to name."""
        broken = check_reply("events", reply.status, reply.body, reply.is_json)
        if not broken:
            return False
        if (id(history), node_id) not in self._broke:
            self._broke.add((id(history), node_id))
            call = history.new_call()
            args = {"after": after}
            history.append("invoke", "events", node=node_id, call=call, args=args)
            result = {"status": reply.status, "contract": [d.describe() for d in broken]}
            history.append(reply.outcome, "events", node=node_id, call=call, args=args,
                           result=result)
        return True

    def poll_quietly(self) -> None:
        """Poll before a node stops answering (a kill, a pause): what it said so far is
        read while it can be; a failing read is the node's, judged elsewhere."""
        with contextlib.suppress(Exception):
            self.poll()

    def record_to(self, history: History) -> None:
        """Flush the events polled so far into the current history, then write to
        ``history``."""
        self.poll_quietly()
        with self.lock:
            self.recording.history = history

    def forget(self, node_id: str) -> None:
        """A node restarted: its new process numbers its events afresh."""
        with self.lock:
            self._cursor[node_id] = 0
            client = self._clients.pop(node_id, None)
        if client is not None:
            client.close()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="event-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread, read what is left, close the clients."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.poll_quietly()

    def close(self) -> None:
        for client in self._clients.values():
            client.close()

    def raise_failure(self) -> None:
        """Raise the harness failure the poller's thread met, if it did."""
        if self._failure is not None:
            raise self._failure

    def sleep(self, seconds: float) -> None:
        """Sleep, cut short by a failure of the poller's thread (then raised)."""
        if self._failed.wait(max(0.0, seconds)):
            self.raise_failure()

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.poll()
            except HarnessError as exc:
                self._failure = exc
                self._failed.set()
                return
            except Exception:  # a node's bad answer: the reads judge the node, not this
                pass
