"""A discrete-event driver of the sans-IO core: thousands of nodes in one process.

One heap of events ordered by (virtual time, sequence number): message deliveries,
node timers and scheduled actions (faults, client calls). Messages travel as the core's
frozen message objects, with no codec; `count_bytes=True` adds the encoded size of each.
Everything random comes from `random.Random(seed)` (the network) and node seeds drawn
from it, so one seed gives one run, event for event.
"""

from __future__ import annotations

import heapq
import json
import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gossipcert.reference_node.core import Node, NodeConfig, Observed, SendMessage, Status
from gossipcert.reference_node.core.codec import encode_message
from gossipcert.reference_node.core.events import BroadcastEvent, Event, MemberEvent
from gossipcert.reference_node.core.membership import Member, MemberBase
from gossipcert.reference_node.core.messages import Message
from gossipcert.reference_node.sim.network import JitterKind, NetworkModel

DISABLED_MS = 2**50
"""An interval so long that the timer never fires within any simulated run."""

_DELIVER, _TIMER, _ACTION = 0, 1, 2
_CHATTER = frozenset({"pull", "ping", "ack", "nack", "ping-req"})

SendHook = Callable[[int, str, str | None, Message], None]
EventHook = Callable[[int, str, Event], None]


def gossip_only(**overrides: Any) -> dict[str, Any]:
    """NodeConfig overrides that switch probing, push-pull and reaping off, so a run
    measures rumor dissemination alone."""
    quiet: dict[str, Any] = {
        "probe_interval_ms": DISABLED_MS,
        "probe_timeout_ms": DISABLED_MS // 2,
        "push_pull_interval_ms": DISABLED_MS,
        "reap_after_ms": DISABLED_MS,
    }
    return {k: v for k, v in {**quiet, **overrides}.items() if k in _CONFIG_FIELDS}


_CONFIG_FIELDS = frozenset(NodeConfig.__dataclass_fields__)


@dataclass(frozen=True)
class TraceEntry:
    """One step of a run, for replay comparison: what happened, when, where."""

    at_ms: int
    what: str
    node: str
    detail: str


class Simulation:
    """n reference nodes on a simulated network, under a virtual clock.

    Node ids are `n0000`-style (zero-padded, so sorted order is index order). Use
    `bootstrap()` to give every node the full membership at once (shared, so 10,000
    nodes fit in memory), or `join_all()` to join them for real through a seed.
    """

    def __init__(
        self,
        n: int,
        config: Mapping[str, Any] | None = None,
        seed: int = 0,
        *,
        latency_ms: float = 10.0,
        jitter_ms: float = 0.0,
        jitter: JitterKind = "uniform",
        loss: float = 0.0,
        start_ms: int = 0,
        count_bytes: bool = False,
        trace: bool = False,
    ) -> None:
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        unknown = set(config or {}) - _CONFIG_FIELDS
        if unknown:
            raise ValueError(f"unknown NodeConfig fields: {', '.join(sorted(unknown))}")
        reserved = {"node_id", "gossip_address", "rng_seed"} & set(config or {})
        if reserved:
            raise ValueError(f"the simulation sets {', '.join(sorted(reserved))} itself")
        self.seed = seed
        self.rng = random.Random(seed)
        self.network = NetworkModel(
            self.rng, latency_ms=latency_ms, jitter_ms=jitter_ms, jitter=jitter, loss=loss
        )
        self.config_overrides: dict[str, Any] = dict(config or {})
        self.now_ms = start_ms
        self.count_bytes = count_bytes
        width = len(str(n - 1))
        self.ids: list[str] = [f"n{i:0{width}d}" for i in range(n)]
        self.index: dict[str, int] = {node_id: i for i, node_id in enumerate(self.ids)}
        self.addresses: list[str] = [f"{node_id}.sim:7946" for node_id in self.ids]
        self._by_address: dict[str, int] = {a: i for i, a in enumerate(self.addresses)}
        self.up: list[bool] = [True] * n
        self._heap: list[tuple[int, int, int, int, Any]] = []
        self._seq = 0
        self._timer_at: list[int] = [-1] * n
        self.in_flight = 0
        self.last_send_ms = start_ms
        # "News": messages carrying updates or state, as opposed to pull requests and
        # probes, which a node sends every period whether or not anything is happening.
        self.news_in_flight = 0
        self.last_news_ms = start_ms
        # Counters: messages by kind, drops by cause, bytes when asked for.
        self.sent: Counter[str] = Counter()
        self.sent_by_node: list[int] = [0] * n
        self.dropped: Counter[str] = Counter()
        self.bytes_sent = 0
        self.delivered: dict[str, dict[str, int]] = {}
        self._send_hooks: list[SendHook] = []
        self._event_hooks: list[EventHook] = []
        self.trace: list[TraceEntry] | None = [] if trace else None
        self.nodes: list[Node] = [self._make_node(i) for i in range(n)]
        for i in range(n):
            self._settle(i)

    # ---- setup -------------------------------------------------------------------------

    def _make_node(self, i: int) -> Node:
        config = NodeConfig(
            node_id=self.ids[i],
            gossip_address=self.addresses[i],
            rng_seed=self.rng.getrandbits(64),
            **self.config_overrides,
        )
        return Node(config, self.now_ms)

    def bootstrap(self) -> None:
        """Every node knows every node as alive at incarnation 0, as if all had joined
        long ago. The full table is one `MemberBase` shared by all nodes, each holding
        only its own changes, so 10,000 nodes cost O(n) memory, not O(n^2). Each node's
        own start-up announcement still sits in its queue: `run_until_quiet()` after
        this lets it drain the way a settled cluster's would."""
        base = MemberBase(
            Member(node_id, self.addresses[i], Status.ALIVE, 0, self.now_ms)
            for i, node_id in enumerate(self.ids)
        )
        for node in self.nodes:
            node.members.use_base(base)

    def join_all(self, limit_ms: int = 60_000) -> bool:
        """Join every node through node 0 and run until all see all n members alive."""
        seed = [self.addresses[0]]
        for i in range(1, len(self.nodes)):
            self.nodes[i].join(seed, self.now_ms)
            self._settle(i)
        n = len(self.nodes)
        return self.run_until_true(
            lambda: all(
                len(node.members.ids_with(Status.ALIVE)) == n
                for node, up in zip(self.nodes, self.up, strict=True)
                if up
            ),
            limit_ms,
            check_every_ms=100,
        )

    # ---- hooks -------------------------------------------------------------------------

    def on_send(self, hook: SendHook) -> None:
        """`hook(at_ms, from_id, to_id, message)` for every message a node sends
        (before loss or partitions decide its fate)."""
        self._send_hooks.append(hook)

    def on_event(self, hook: EventHook) -> None:
        """`hook(at_ms, observer_id, event)` for every member or broadcast event."""
        self._event_hooks.append(hook)

    # ---- client calls and faults ---------------------------------------------------------

    def node(self, node_id: str) -> Node:
        return self.nodes[self.index[node_id]]

    def broadcast(self, origin: str, broadcast_id: str, payload: Any = None) -> None:
        i = self.index[origin]
        self.nodes[i].broadcast(broadcast_id, payload, self.now_ms)
        self._settle(i)

    def kv_put(self, node_id: str, key: str, value: Any) -> None:
        i = self.index[node_id]
        self.nodes[i].kv_put(key, value, self.now_ms)
        self._settle(i)

    def leave(self, node_id: str) -> None:
        i = self.index[node_id]
        self.nodes[i].leave(self.now_ms)
        self._settle(i)

    def crash(self, node_id: str) -> None:
        """The node stops dead: no more timers, messages to it are lost."""
        i = self.index[node_id]
        self.up[i] = False
        self._timer_at[i] = -1
        self._record("crash", node_id, "")

    def restart(self, node_id: str, *, keep_incarnation: bool = True) -> None:
        """A fresh node under the same id and address (its state is gone), which joins
        through a random live node. With `keep_incarnation` it starts above its old
        incarnation, as a node with a data directory does."""
        i = self.index[node_id]
        old = self.nodes[i]
        node = self._make_node(i)
        if keep_incarnation:
            node.restore_incarnation(old.incarnation, self.now_ms)
        self.nodes[i] = node
        self.up[i] = True
        self._record("restart", node_id, "")
        others = [j for j, up in enumerate(self.up) if up and j != i]
        if others:
            node.join([self.addresses[self.rng.choice(others)]], self.now_ms)
        self._settle(i)

    def partition(self, groups: Iterable[Iterable[str]]) -> None:
        """Cut every link between different groups (ids); unlisted nodes form a group."""
        materialised = [[self.index[node_id] for node_id in group] for group in groups]
        self.network.partition(materialised)
        self._record("partition", "", repr(materialised))

    def cut(self, src: str, dst: str) -> None:
        """Cut one direction of one link."""
        self.network.cut(self.index[src], self.index[dst])
        self._record("cut", src, dst)

    def heal(self) -> None:
        self.network.heal()
        self._record("heal", "", "")

    def at(self, at_ms: int, action: Callable[[], None]) -> None:
        """Run `action()` at virtual time `at_ms` (a fault, a client call, a check)."""
        if at_ms < self.now_ms:
            raise ValueError(f"cannot schedule in the past ({at_ms} < {self.now_ms})")
        self._push(at_ms, _ACTION, -1, action)

    # ---- running -----------------------------------------------------------------------

    def run_until(self, t_ms: int) -> None:
        """Process every event up to and including virtual time `t_ms`."""
        self._run(t_ms, None)
        self.now_ms = max(self.now_ms, t_ms)

    def run_for(self, duration_ms: int) -> None:
        self.run_until(self.now_ms + duration_ms)

    def run_until_true(
        self, done: Callable[[], bool], limit_ms: int, *, check_every_ms: int = 0
    ) -> bool:
        """Run until `done()` holds (checked after each event, or at most once per
        `check_every_ms` of virtual time for costly checks); False at the limit."""
        if done():
            return True
        return self._run(self.now_ms + limit_ms, done, check_every_ms)

    def run_until_delivered(self, broadcast_id: str, limit_ms: int) -> bool:
        """Run until every live node has delivered `broadcast_id`."""
        return self.run_until_true(
            lambda: len(self.delivered.get(broadcast_id, ())) >= sum(self.up), limit_ms
        )

    def run_until_quiet(self, quiet_ms: int | None = None, limit_ms: int = 120_000) -> bool:
        """Run until no news (a message carrying updates or state) is in flight and
        none was sent for `quiet_ms` (default: five gossip intervals); pull requests and
        empty probes do not count. False when `limit_ms` passes first."""
        if quiet_ms is None:
            quiet_ms = 5 * self.nodes[0].config.gossip_interval_ms

        def quiet() -> bool:
            return self.news_in_flight == 0 and self._next_time() - self.last_news_ms >= quiet_ms

        if self._run(self.now_ms + limit_ms, quiet):
            self.now_ms = max(self.now_ms, self.last_news_ms + quiet_ms)
            return True
        return False

    def _next_time(self) -> int:
        return self._heap[0][0] if self._heap else 2**62

    def _run(self, until_ms: int, done: Callable[[], bool] | None, every_ms: int = 0) -> bool:
        heap = self._heap
        nodes = self.nodes
        up = self.up
        timer_at = self._timer_at
        next_check = self.now_ms
        while heap and heap[0][0] <= until_ms:
            at_ms, _, kind, i, payload = heapq.heappop(heap)
            self.now_ms = at_ms
            if kind == _DELIVER:
                self.in_flight -= 1
                src, message, news = payload
                self.news_in_flight -= news
                if not up[i]:
                    self.dropped["down"] += 1
                elif self.network.faulted and self.network.blocked(src, i):
                    self.dropped["partition"] += 1
                else:
                    if self.trace is not None:
                        self._record("recv", self.ids[i], _describe(message))
                    nodes[i].receive(message, at_ms)
                    self._settle(i)
            elif kind == _TIMER:
                if timer_at[i] != at_ms or not up[i]:
                    continue  # superseded by a later reschedule, or crashed
                timer_at[i] = -1
                nodes[i].tick(at_ms)
                self._settle(i)
            else:
                payload()
            if done is not None and at_ms >= next_check:
                if done():
                    return True
                next_check = at_ms + every_ms
        return done is not None and done()

    # ---- plumbing ----------------------------------------------------------------------

    def _push(self, at_ms: int, kind: int, i: int, payload: Any) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at_ms, self._seq, kind, i, payload))

    def _settle(self, i: int) -> None:
        """Carry out node i's effects, then re-arm its timer at its next deadline."""
        node = self.nodes[i]
        for effect in node.take_effects():
            if isinstance(effect, SendMessage):
                self._send(i, effect)
            elif isinstance(effect, Observed):
                self._observed(i, effect.event)
        if not self.up[i]:
            return
        deadline = max(node.next_deadline_ms(), self.now_ms + 1)
        if self._timer_at[i] != deadline:
            self._timer_at[i] = deadline
            self._push(deadline, _TIMER, i, None)

    def _send(self, src: int, effect: SendMessage) -> None:
        message = effect.message
        self.sent[message.kind] += 1
        self.sent_by_node[src] += 1
        self.last_send_ms = self.now_ms
        news = bool(message.updates) or message.kind not in _CHATTER
        if news:
            self.last_news_ms = self.now_ms
        if self.count_bytes:
            encoded = json.dumps(encode_message(message), separators=(",", ":"))
            self.bytes_sent += len(encoded.encode())
        for hook in self._send_hooks:
            hook(self.now_ms, self.ids[src], effect.to_id, message)
        dst = self.index.get(effect.to_id) if effect.to_id is not None else None
        if dst is None:
            dst = self._by_address.get(effect.address)
        if dst is None:
            self.dropped["unroutable"] += 1
            return
        if self.network.faulted and self.network.blocked(src, dst):
            self.dropped["partition"] += 1
            return
        delay = self.network.delay_ms()
        if delay is None:
            self.dropped["loss"] += 1
            return
        if self.trace is not None:
            self._record("send", self.ids[src], f"{self.ids[dst]} {_describe(message)}")
        self.in_flight += 1
        self.news_in_flight += news
        self._push(self.now_ms + delay, _DELIVER, dst, (src, message, news))

    def _observed(self, i: int, event: Event) -> None:
        node_id = self.ids[i]
        if isinstance(event, BroadcastEvent):
            self.delivered.setdefault(event.id, {})[node_id] = event.at_ms
        if self.trace is not None:
            self._record("event", node_id, _describe_event(event))
        for hook in self._event_hooks:
            hook(self.now_ms, node_id, event)

    def _record(self, what: str, node: str, detail: str) -> None:
        if self.trace is not None:
            self.trace.append(TraceEntry(self.now_ms, what, node, detail))

    # ---- views -------------------------------------------------------------------------

    def live_ids(self) -> list[str]:
        return [node_id for node_id, up in zip(self.ids, self.up, strict=True) if up]

    def status_seen(self, observer: str, member: str) -> Status | None:
        record = self.node(observer).members.get(member)
        return None if record is None else record.status

    def all_see(self, member: str, *statuses: Status, among: Sequence[str] | None = None) -> bool:
        """True when every live node (or each of `among`) other than `member` holds it
        in one of `statuses`."""
        observers = among if among is not None else self.live_ids()
        return all(
            self.status_seen(observer, member) in statuses
            for observer in observers
            if observer != member
        )


def _describe(message: Message) -> str:
    subjects = ",".join(f"{type(u).__name__}:{getattr(u, 'subject', '?')}" for u in message.updates)
    return f"{message.kind} from={message.sender} [{subjects}]"


def _describe_event(event: Event) -> str:
    if isinstance(event, MemberEvent):
        return f"member {event.member} {event.status.value} {event.incarnation}"
    return f"broadcast {event.id}"
