"""A discrete-event driver of the sans-IO core: thousands of nodes in one process, or a
handful that answer the control API exactly as real ones do.

One heap of events ordered by (virtual time, sequence number): message deliveries,
node timers and scheduled actions (faults, client calls). Everything random comes from
`random.Random(seed)` (the network) and node seeds drawn from it, so one seed gives one
run, event for event.

Two ways to carry messages:

- objects (the default): the core's frozen message objects travel as they are, with no
  codec; `count_bytes=True` adds the encoded size of each. This is what lets 10,000
  nodes fit.
- the wire (`wire=True`, and always when nodes hold gossip keys): every message goes
  through the runtime's own outbound path (the core's codec, the sender's keyring,
  `framing.encode_frame`) and the runtime's own inbound path (`framing.InboundStream`
  with the receiver's keyring and replay guard). A frame that will not open is dropped
  and counted where the runtime counts it, and the connection it came on is closed, as
  the runtime closes it. Connections are modelled as TCP's are between real nodes: one
  per directed link, opened by the sender's first message, refused by a node that is
  not running (the runtime's connect failure and back-off), closed when either end
  dies.

A node is one process of the reference node: it runs (`up`), is paused (SIGSTOP: it
handles no timer and no message, and what is sent to it waits, as bytes wait in its
socket buffers, until `resume`), or is down (crashed, removed, or not started yet). Each
keeps what its `--data-dir` would hold (`DataDirState`, the runtime's persistence rules),
so `restart` after a crash gives it back exactly what a real node finds after SIGKILL.

`request(node_id, method, path, body)` serves the control API through
`reference_node.api.handle`, the function the real node serves over HTTP. A node that is
not running answers as a refused connection, a paused one as a timeout, both with status
0 and a body `{"error": "unreachable" | "timeout", "message": ...}`; no virtual time
passes for either. A join waits (in virtual time) until the node is ready, as the real
call does.
"""

from __future__ import annotations

import heapq
import json
import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from gossipcert.reference_node import api
from gossipcert.reference_node.core import Node, NodeConfig, Observed, SendMessage, Status
from gossipcert.reference_node.core.codec import encode_message, encode_update
from gossipcert.reference_node.core.effects import Persist
from gossipcert.reference_node.core.events import BroadcastEvent, Event, MemberEvent
from gossipcert.reference_node.core.keyring import (
    NONCE_BYTES,
    OVERHEAD,
    Keyring,
    ReplayGuard,
    parse_key,
)
from gossipcert.reference_node.core.membership import Member, MemberBase
from gossipcert.reference_node.core.messages import Message
from gossipcert.reference_node.durable import COMPACT_EVERY, Stored, restore_node
from gossipcert.reference_node.framing import FrameError, InboundStream, encode_frame
from gossipcert.reference_node.metrics import Metrics
from gossipcert.reference_node.sim.network import JitterKind, NetworkModel

__all__ = [
    "DISABLED_MS",
    "RECONNECT_BACKOFF_MS",
    "TIMEOUT",
    "UNREACHABLE",
    "DataDirState",
    "LinkCounters",
    "Simulation",
    "TraceEntry",
    "gossip_only",
]

T = TypeVar("T")

DISABLED_MS = 2**50
"""An interval so long that the timer never fires within any simulated run."""
RECONNECT_BACKOFF_MS = 100
"""After a refused connection, messages on that link are dropped this long (the
runtime's `RECONNECT_BACKOFF_S`)."""
UNREACHABLE = "unreachable"
"""`request` error of a node that is not running: its connection is refused."""
TIMEOUT = "timeout"
"""`request` error of a paused node: the connection opens, no answer comes."""

_DELIVER, _TIMER, _ACTION = 0, 1, 2
_CHATTER = frozenset({"pull", "ping", "ack", "nack", "ping-req"})
_HEADER_BYTES = 4

SendHook = Callable[[int, str, str | None, Message], None]
EventHook = Callable[[int, str, Event], None]
Link = tuple[int, int]


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
_RESERVED_FIELDS = frozenset({"node_id", "gossip_address", "rng_seed"})


def _checked_overrides(config: Mapping[str, Any] | None) -> dict[str, Any]:
    overrides = dict(config or {})
    unknown = set(overrides) - _CONFIG_FIELDS
    if unknown:
        raise ValueError(f"unknown NodeConfig fields: {', '.join(sorted(unknown))}")
    reserved = _RESERVED_FIELDS & set(overrides)
    if reserved:
        raise ValueError(f"the simulation sets {', '.join(sorted(reserved))} itself")
    return overrides


@dataclass(frozen=True)
class TraceEntry:
    """One step of a run, for replay comparison: what happened, when, where."""

    at_ms: int
    what: str
    node: str
    detail: str


@dataclass
class LinkCounters:
    """What one directed link carried: the simulated counterpart of its proxy's counters.

    `messages` and `bytes` entered the link (a proxy counts what it reads from the
    sender, even what a partition then swallows); the rest says what became of them.
    Bytes are counted in wire mode or with `count_bytes`."""

    messages: int = 0
    bytes: int = 0
    delivered: int = 0
    lost: int = 0
    cut: int = 0
    down: int = 0


@dataclass
class DataDirState:
    """What a node's `--data-dir` holds (`reference_node/persist.py`), kept by the
    runtime's rules: the highest incarnation announced, rewritten before a message
    carries it; one log record per acknowledged write; the log folded into a snapshot
    every `COMPACT_EVERY` records. Nothing else survives a SIGKILL (the final snapshot
    is written only on a clean shutdown)."""

    incarnation: int | None = None
    snapshot: str | None = None
    """`snapshot.json`, as written."""
    log: list[str] = field(default_factory=list)
    """`writes.log`, one JSON line per record."""

    def record(self, node: Node, persisted: list[Persist]) -> None:
        """The runtime's `_persist` after one input of `node`."""
        incarnation = node.incarnation
        if self.incarnation is None or incarnation > self.incarnation:
            self.incarnation = incarnation
        if persisted:
            self.log.extend(
                json.dumps(encode_update(p.update), separators=(",", ":")) for p in persisted
            )
            if len(self.log) >= COMPACT_EVERY:
                self.snapshot = json.dumps(node.snapshot(), separators=(",", ":"))
                self.log = []

    def stored(self) -> Stored:
        """What `DataDir.load()` reads back."""
        return Stored(
            incarnation=self.incarnation,
            snapshot=None if self.snapshot is None else json.loads(self.snapshot),
            writes=[json.loads(line) for line in self.log],
        )


class _NodeHost:
    """`api.Host` over one simulated node."""

    def __init__(self, sim: Simulation, i: int) -> None:
        self._sim = sim
        self._i = i

    @property
    def node(self) -> Node:
        return self._sim.nodes[self._i]

    def call(self, action: Callable[[int], T]) -> T:
        return self._sim._call(self._i, action)

    def metrics_snapshot(self) -> dict[str, Any]:
        return self._sim._metrics_snapshot(self._i)

    def keyring_view(self) -> dict[str, Any]:
        return api.keyring_view(self._sim.keyrings[self._i])

    def keyring_change(self, op: str, key_text: str) -> dict[str, Any]:
        api.change_keyring(self._sim.keyrings[self._i], op, key_text)
        return self.keyring_view()


class Simulation:
    """Reference nodes on a simulated network, under a virtual clock.

    Nodes are `n` ids `n0000`-style (zero-padded, so sorted order is index order) or the
    given `ids`. `config` holds NodeConfig overrides for every node (timing, conflict
    policy, ...), `node_config` more per node. With `start=True` every node runs from the
    start, as a process started without seeds; with `start=False` none runs until
    `start_node`. Use `bootstrap()` to give every node the full membership at once
    (shared, so 10,000 nodes fit in memory), or `join_all()` to join them for real
    through a seed.

    `gossip_key` (base64, as `--key`) gives every node this keyring and turns the wire
    on; `count_links` keeps `LinkCounters` per directed link (memory grows with the
    links used, so it is off by default).
    """

    def __init__(
        self,
        n: int | None = None,
        config: Mapping[str, Any] | None = None,
        seed: int = 0,
        *,
        ids: Sequence[str] | None = None,
        node_config: Mapping[str, Mapping[str, Any]] | None = None,
        gossip_key: str | None = None,
        wire: bool = False,
        count_links: bool = False,
        start: bool = True,
        latency_ms: float = 10.0,
        jitter_ms: float = 0.0,
        jitter: JitterKind = "uniform",
        loss: float = 0.0,
        start_ms: int = 0,
        count_bytes: bool = False,
        trace: bool = False,
    ) -> None:
        if ids is not None:
            ids = list(ids)
            if n is not None and n != len(ids):
                raise ValueError(f"n is {n} but {len(ids)} ids are given")
            if not ids:
                raise ValueError("ids must not be empty")
            if any(not isinstance(i, str) or not i for i in ids):
                raise ValueError("ids must be non-empty strings")
            if len(set(ids)) != len(ids):
                raise ValueError("ids must be unique")
        elif n is None:
            raise ValueError("give n or ids")
        elif n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        else:
            width = len(str(n - 1))
            ids = [f"n{i:0{width}d}" for i in range(n)]
        self.config_overrides: dict[str, Any] = _checked_overrides(config)
        unknown_ids = set(node_config or {}) - set(ids)
        if unknown_ids:
            raise ValueError(f"node_config names unknown ids: {', '.join(sorted(unknown_ids))}")
        per_node = {k: _checked_overrides(v) for k, v in (node_config or {}).items()}
        if gossip_key is not None:
            parse_key(gossip_key)  # a bad key fails here, with KeyringError's message
        self.seed = seed
        self.rng = random.Random(seed)
        self._nonces = random.Random(f"nonces:{seed}")
        self.network = NetworkModel(
            self.rng, latency_ms=latency_ms, jitter_ms=jitter_ms, jitter=jitter, loss=loss
        )
        self.now_ms = start_ms
        self.count_bytes = count_bytes
        self.wire = wire or gossip_key is not None
        self._heap: list[tuple[int, int, int, int, Any]] = []
        self._seq = 0
        self.in_flight = 0
        self.last_send_ms = start_ms
        # "News": messages carrying updates or state, as opposed to pull requests and
        # probes, which a node sends every period whether or not anything is happening.
        self.news_in_flight = 0
        self.last_news_ms = start_ms
        # Counters: messages by kind, drops by cause, bytes when asked for.
        self.sent: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.bytes_sent = 0
        self.delivered: dict[str, dict[str, int]] = {}
        self._send_hooks: list[SendHook] = []
        self._event_hooks: list[EventHook] = []
        self.trace: list[TraceEntry] | None = [] if trace else None
        self._links: dict[Link, LinkCounters] | None = {} if count_links else None
        # Connections of the wire: open directed links, how many times each closed (a
        # frame sent on an earlier connection is lost with it), refused ones' back-off,
        # receivers' inbound streams.
        self._open: set[Link] = set()
        self._epoch: dict[Link, int] = {}
        self._retry_at: dict[Link, int] = {}
        self._streams: dict[Link, InboundStream] = {}
        # Per node, by index.
        self.ids: list[str] = []
        self.index: dict[str, int] = {}
        self.addresses: list[str] = []
        self._by_address: dict[str, int] = {}
        self.nodes: list[Node] = []
        self.up: list[bool] = []
        self.paused: list[bool] = []
        self.removed: list[bool] = []
        self.sent_by_node: list[int] = []
        self.metrics: list[Metrics] = []
        self.data_dirs: list[DataDirState] = []
        self.keyrings: list[Keyring | None] = []
        self._timer_at: list[int] = []
        self._overrides: list[dict[str, Any]] = []
        self._keys: list[str | None] = []
        self._guards: list[ReplayGuard] = []
        self._launch_seeds: list[tuple[str, ...] | None] = []
        self._dialled: list[set[int]] = []
        self._held: dict[int, list[tuple[int, Any, int, int]]] = {}
        self._hosts: list[_NodeHost] = []
        for node_id in ids:
            overrides = {**self.config_overrides, **per_node.get(node_id, {})}
            self._add_slot(node_id, overrides, gossip_key, start=start)
        if start:
            for i in range(len(ids)):
                self._settle(i)

    # ---- setup -------------------------------------------------------------------------

    def _add_slot(
        self, node_id: str, overrides: dict[str, Any], key: str | None, *, start: bool = False
    ) -> int:
        """A node that exists (id, address), running from now on with `start` (which
        makes it a node of the constructor, see `restart`)."""
        i = len(self.ids)
        address = self.address(node_id)
        self.ids.append(node_id)
        self.index[node_id] = i
        self.addresses.append(address)
        self._by_address[address] = i
        self._overrides.append(overrides)
        # Until it starts, a stand-in that draws nothing from the run's generator.
        self.nodes.append(
            self._make_node(i) if start else Node(self._config(i, rng_seed=0), self.now_ms)
        )
        self.up.append(False)
        self.paused.append(False)
        self.removed.append(False)
        self.sent_by_node.append(0)
        self.metrics.append(Metrics())
        self.data_dirs.append(DataDirState())
        self.keyrings.append(None)
        self._timer_at.append(-1)
        self._keys.append(key)
        self._guards.append(ReplayGuard())
        self._launch_seeds.append(())
        self._dialled.append(set())
        self._hosts.append(_NodeHost(self, i))
        if start:
            self._begin(i)
            self._launch_seeds[i] = None
        return i

    def _config(self, i: int, rng_seed: int) -> NodeConfig:
        return NodeConfig(
            node_id=self.ids[i],
            gossip_address=self.addresses[i],
            rng_seed=rng_seed,
            **self._overrides[i],
        )

    def _make_node(self, i: int) -> Node:
        return Node(self._config(i, self.rng.getrandbits(64)), self.now_ms)

    def _start(self, i: int) -> Node:
        """A new process for slot i: a fresh core, fresh counters, the launch keyring."""
        node = self.nodes[i] = self._make_node(i)
        self._begin(i)
        return node

    def _begin(self, i: int) -> None:
        self.up[i] = True
        self.paused[i] = False
        self.metrics[i] = Metrics()
        key = self._keys[i]
        self.keyrings[i] = None if key is None else Keyring([parse_key(key)])
        self._guards[i] = ReplayGuard()
        self._dialled[i] = set()

    @staticmethod
    def address(node_id: str) -> str:
        """The gossip address of the node with this id (what seeds and member lists
        carry), also before `add_node` brings it in."""
        return f"{node_id}.sim:7946"

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

    # ---- nodes coming and going --------------------------------------------------------

    def start_node(self, node_id: str, seeds: Sequence[str] = ()) -> None:
        """Start a node that has not run yet, as its process starts: with `seeds` (ids or
        addresses) it joins through them, as `--seed` makes it."""
        i = self.index[node_id]
        if self.up[i] or self.removed[i]:
            raise ValueError(f"node {node_id} is running or removed; restart it instead")
        self._start(i)
        self._launch_seeds[i] = tuple(self._seed_address(s) for s in seeds)
        self._record("start", node_id, " ".join(self._launch_seeds[i] or ()))
        self._settle(i)
        self._join(i, self._launch_seeds[i] or ())

    def add_node(
        self,
        node_id: str,
        *,
        config: Mapping[str, Any] | None = None,
        gossip_key: str | None = None,
        seeds: Sequence[str] = (),
        start: bool = True,
    ) -> None:
        """A node that was not there before (`config` overrides the run's NodeConfig
        overrides): started at once unless `start=False`. A node with another
        `gossip_key` than the others is an intruder: its frames do not open."""
        if node_id in self.index:
            raise ValueError(f"node id {node_id!r} is already in use")
        if not node_id:
            raise ValueError("node ids must be non-empty strings")
        if gossip_key is not None:
            if not self.wire:
                raise ValueError("nodes with gossip keys need wire=True (or a gossip_key)")
            parse_key(gossip_key)
        overrides = {**self.config_overrides, **_checked_overrides(config)}
        self._add_slot(node_id, overrides, gossip_key)
        self._record("add", node_id, "")
        if start:
            self.start_node(node_id, seeds)

    def remove_node(self, node_id: str) -> None:
        """Kill the node for good: it answers nothing, and cannot be restarted."""
        i = self.index[node_id]
        if self.up[i]:
            self.crash(node_id)
        self.removed[i] = True
        self._record("remove", node_id, "")

    def crash(self, node_id: str) -> None:
        """The node stops dead (SIGKILL): no more timers, messages to it are lost, what
        it held in memory is gone; its data dir stays."""
        i = self.index[node_id]
        self.up[i] = False
        self.paused[i] = False
        self._timer_at[i] = -1
        held = self._held.pop(i, [])
        self.dropped["down"] += len(held)
        self._close_connections(i)
        self._record("crash", node_id, "")

    def pause(self, node_id: str) -> None:
        """SIGSTOP: the node handles no timer and no message until `resume`; what is sent
        to it meanwhile waits for it, and its control API times out."""
        i = self.index[node_id]
        if not self.up[i]:
            raise ValueError(f"node {node_id} is not running")
        self.paused[i] = True
        self._timer_at[i] = -1
        self._record("pause", node_id, "")

    def resume(self, node_id: str) -> None:
        """SIGCONT: the node reads what waited for it, in order, then its overdue timers
        fire. Resuming a node that is not paused does nothing."""
        i = self.index[node_id]
        if not self.paused[i]:
            return
        self.paused[i] = False
        self._record("resume", node_id, "")
        for src, data, size, epoch in self._held.pop(i, []):
            if not self.up[i] or self.paused[i]:
                break
            self._deliver(src, i, data, size, epoch)
        self._settle(i)

    def restart(
        self,
        node_id: str,
        *,
        data_dir: bool = True,
        keep_incarnation: bool = True,
        seeds: Sequence[str] | None = None,
    ) -> None:
        """Kill the node if it runs, then start it again under the same id and address.

        With `data_dir` the new life restores what the node's data dir holds after a
        SIGKILL (`DataDirState`: incarnation, snapshot, acknowledged writes), as the
        runtime does; without it the state is gone, and with `keep_incarnation` it still
        starts above its old incarnation. It joins through `seeds` (ids or addresses);
        by default through the seeds it was started with, or, for a node the constructor
        started, through a random live node.
        """
        i = self.index[node_id]
        if self.removed[i]:
            raise ValueError(f"node {node_id} was removed")
        if self.up[i]:
            self.crash(node_id)
        old = self.nodes[i]
        node = self._start(i)
        if data_dir:
            restore_node(node, self.data_dirs[i].stored(), self.now_ms)
        else:
            self.data_dirs[i] = DataDirState()
            if keep_incarnation:
                node.restore_incarnation(old.incarnation, self.now_ms)
        self._record("restart", node_id, "")
        if seeds is None:
            launch = self._launch_seeds[i]
            if launch is None:
                others = [j for j, up in enumerate(self.up) if up and j != i]
                launch = (self.addresses[self.rng.choice(others)],) if others else ()
            seeds = launch
        self._settle(i)
        self._join(i, [self._seed_address(s) for s in seeds])

    def _join(self, i: int, seeds: Sequence[str]) -> None:
        if seeds:
            self._call(i, lambda now: self.nodes[i].join(seeds, now))

    def _seed_address(self, seed: str) -> str:
        j = self.index.get(seed)
        return seed if j is None else self.addresses[j]

    # ---- hooks -------------------------------------------------------------------------

    def on_send(self, hook: SendHook) -> None:
        """`hook(at_ms, from_id, to_id, message)` for every message a node sends
        (before loss or partitions decide its fate)."""
        self._send_hooks.append(hook)

    def on_event(self, hook: EventHook) -> None:
        """`hook(at_ms, observer_id, event)` for every member or broadcast event a node
        records, at the virtual time it records it (`event.at_ms`)."""
        self._event_hooks.append(hook)

    # ---- client calls ------------------------------------------------------------------

    def node(self, node_id: str) -> Node:
        return self.nodes[self.index[node_id]]

    def call(self, node_id: str, action: Callable[[Node, int], T]) -> T:
        """Run `action(node, now_ms)` on the node as a client call, then carry out its
        effects (writes made durable, messages sent, timer re-armed)."""
        i = self.index[node_id]
        return self._call(i, lambda now: action(self.nodes[i], now))

    def _call(self, i: int, action: Callable[[int], T]) -> T:
        result = action(self.now_ms)
        self._settle(i)
        return result

    def request(
        self, node_id: str, method: str, path: str, body: Any = None, *, raw: bytes | None = None
    ) -> tuple[int, Any]:
        """One control-API call, answered by `reference_node.api` at the virtual now:
        (HTTP status, JSON body). `body` is sent as JSON (None: no body), `raw` as is.

        A node that is not running answers (0, {"error": "unreachable", ...}), as a
        refused connection; a paused one (0, {"error": "timeout", ...}). A join runs the
        simulation until the node is ready or the contract's wait is over."""
        i = self.index[node_id]
        refused = self._unanswered(i)
        if refused is not None:
            return 0, refused
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        reply = api.handle(self._hosts[i], method, path, data)
        if isinstance(reply, api.AwaitReady):
            until = self.now_ms + reply.timeout_ms

            def settled() -> bool:
                return self.nodes[i].ready or not self.up[i] or self.paused[i]

            if not self.run_until_true(settled, reply.timeout_ms):
                self.run_until(until)
            refused = self._unanswered(i)
            if refused is not None:
                return 0, refused
            reply = reply.outcome(self.nodes[i].ready)
        # As a client reads it: JSON, never the node's own objects.
        return reply.status, json.loads(json.dumps(reply.body))

    def _unanswered(self, i: int) -> dict[str, str] | None:
        node_id = self.ids[i]
        if not self.up[i]:
            state = "removed" if self.removed[i] else "not running"
            return {"error": UNREACHABLE, "message": f"{node_id} is {state}: connection refused"}
        if self.paused[i]:
            return {"error": TIMEOUT, "message": f"{node_id} is paused: no answer"}
        return None

    def broadcast(self, origin: str, broadcast_id: str, payload: Any = None) -> None:
        self.call(origin, lambda node, now: node.broadcast(broadcast_id, payload, now))

    def kv_put(self, node_id: str, key: str, value: Any) -> None:
        self.call(node_id, lambda node, now: node.kv_put(key, value, now))

    def join(self, node_id: str, seeds: Sequence[str]) -> None:
        """Start a join through `seeds` (ids or addresses) and return at once."""
        self._join(self.index[node_id], [self._seed_address(s) for s in seeds])

    def leave(self, node_id: str) -> None:
        self.call(node_id, lambda node, now: node.leave(now))

    # ---- network faults ----------------------------------------------------------------

    def partition(self, groups: Iterable[Iterable[str]]) -> None:
        """Cut every link between different groups (ids); unlisted nodes form a group."""
        materialised = [[self.index[node_id] for node_id in group] for group in groups]
        self.network.partition(materialised)
        self._record("partition", "", repr(materialised))

    def cut(self, src: str, dst: str) -> None:
        """Cut one direction of one link."""
        self.network.cut(self.index[src], self.index[dst])
        self._record("cut", src, dst)

    def set_link_latency(
        self, src: str, dst: str, latency_ms: float, jitter_ms: float = 0.0
    ) -> None:
        """Messages from `src` to `dst` take `latency_ms` +- `jitter_ms` (uniform) more,
        as a latency toxic on that link's proxy makes them."""
        self.network.link_latency(self.index[src], self.index[dst], latency_ms, jitter_ms)
        self._record("latency", src, f"{dst} {latency_ms}+-{jitter_ms}")

    def set_link_loss(self, src: str, dst: str, probability: float) -> None:
        """Messages from `src` to `dst` are lost with `probability`, on top of the
        network's own loss."""
        self.network.link_loss(self.index[src], self.index[dst], probability)
        self._record("loss", src, f"{dst} {probability}")

    def heal(self) -> None:
        """Remove partitions, one-way cuts and every per-link latency and loss."""
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
        paused = self.paused
        metrics = self.metrics
        wire = self.wire
        timer_at = self._timer_at
        next_check = self.now_ms
        while heap and heap[0][0] <= until_ms:
            at_ms, _, kind, i, payload = heapq.heappop(heap)
            self.now_ms = at_ms
            if kind == _DELIVER:
                self.in_flight -= 1
                src, data, news, size, epoch = payload
                self.news_in_flight -= news
                if not up[i]:
                    self.dropped["down"] += 1
                    if self._links is not None:
                        self._link(src, i).down += 1
                elif self.network.faulted and self.network.blocked(src, i):
                    self.dropped["partition"] += 1
                    if self._links is not None:
                        self._link(src, i).cut += 1
                elif paused[i]:
                    # In the receiver's socket buffer: read when it runs again.
                    self._held.setdefault(i, []).append((src, data, size, epoch))
                elif wire or self._links is not None:
                    self._deliver(src, i, data, size, epoch)
                else:  # the common case, inline: a message object
                    metrics[i].received(data.kind, size)
                    if self.trace is not None:
                        self._record("recv", self.ids[i], _describe(data))
                    nodes[i].receive(data, at_ms)
                    self._settle(i)
            elif kind == _TIMER:
                if timer_at[i] != at_ms or not up[i]:
                    continue  # superseded by a later reschedule, crashed or paused
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
        """Carry out node i's effects (durability first, as the runtime does), then
        re-arm its timer at its next deadline."""
        node = self.nodes[i]
        effects = node.take_effects()
        data_dir = self.data_dirs[i]
        persisted = [e for e in effects if type(e) is Persist] if effects else []
        if persisted or data_dir.incarnation != node.incarnation:
            data_dir.record(node, persisted)
        for effect in effects:
            if isinstance(effect, SendMessage):
                self._send(i, effect)
            elif isinstance(effect, Observed):
                self._observed(i, effect.event)
        if not self.up[i] or self.paused[i]:
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
        for hook in self._send_hooks:
            hook(self.now_ms, self.ids[src], effect.to_id, message)
        data: Any = message
        size = 0
        if self.wire:
            keyring = self.keyrings[src]
            try:
                frame = encode_frame(encode_message(message), self._sealer(keyring))
            except (FrameError, TypeError, ValueError):
                self.metrics[src].drop("unencodable")
                self.dropped["unencodable"] += 1
                return
            data = frame
            size = len(frame)
            self.bytes_sent += size - _HEADER_BYTES - (OVERHEAD if keyring is not None else 0)
        elif self.count_bytes:
            encoded = json.dumps(encode_message(message), separators=(",", ":"))
            body_bytes = len(encoded.encode())
            self.bytes_sent += body_bytes
            size = body_bytes + _HEADER_BYTES
        dst = self.index.get(effect.to_id) if effect.to_id is not None else None
        if dst is None:
            dst = self._by_address.get(effect.address)
        if dst is None:
            self.dropped["unroutable"] += 1
            if self.wire:
                self.metrics[src].drop("connect_failed")
            return
        epoch = 0
        if self.wire:
            link = (src, dst)
            if link not in self._open and not self._connect(link):
                return
            epoch = self._epoch.get(link, 0)
        self.metrics[src].sent(message.kind, size)
        counters = self._link(src, dst) if self._links is not None else None
        if counters is not None:
            counters.messages += 1
            counters.bytes += size
        if self.network.faulted and self.network.blocked(src, dst):
            self.dropped["partition"] += 1
            if counters is not None:
                counters.cut += 1
            return
        delay = self.network.delay_ms(src, dst)
        if delay is None:
            self.dropped["loss"] += 1
            if counters is not None:
                counters.lost += 1
            return
        if self.trace is not None:
            self._record("send", self.ids[src], f"{self.ids[dst]} {_describe(message)}")
        self.in_flight += 1
        self.news_in_flight += news
        self._push(self.now_ms + delay, _DELIVER, dst, (src, data, news, size, epoch))

    def _sealer(self, keyring: Keyring | None) -> Callable[[bytes], bytes] | None:
        if keyring is None:
            return None
        nonce = self._nonces.randbytes(NONCE_BYTES)
        now = self.now_ms
        return lambda body: keyring.seal(body, nonce, now)

    def _connect(self, link: Link) -> bool:
        """Open the sender's connection on `link`, as the runtime's `PeerLink` does; False
        (and the message dropped) when it is refused or backing off."""
        src, dst = link
        metrics = self.metrics[src]
        if self.now_ms < self._retry_at.get(link, -1):
            metrics.drop("connect_failed")
            self.dropped["down"] += 1
            return False
        if not self.up[dst]:  # nothing listens: refused (a paused node still accepts)
            metrics.connect_failures += 1
            metrics.drop("connect_failed")
            self._retry_at[link] = self.now_ms + RECONNECT_BACKOFF_MS
            self.dropped["down"] += 1
            return False
        metrics.connections_opened += 1
        self._open.add(link)
        self._dialled[src].add(dst)
        return True

    def _close(self, link: Link) -> None:
        """Close a connection: what is still on its way over it is lost."""
        self._open.discard(link)
        self._streams.pop(link, None)
        self._epoch[link] = self._epoch.get(link, 0) + 1

    def _close_connections(self, i: int) -> None:
        if not self.wire:
            return
        for link in [link for link in self._open if i in link]:
            self._close(link)
        for link in [link for link in self._streams if i in link]:
            self._close(link)

    def _deliver(self, src: int, dst: int, data: Any, size: int, epoch: int) -> None:
        """Hand what arrived on (src, dst) to the receiving node, then settle it."""
        node = self.nodes[dst]
        metrics = self.metrics[dst]
        if not self.wire:
            if self._links is not None:
                self._link(src, dst).delivered += 1
            metrics.received(data.kind, size)
            if self.trace is not None:
                self._record("recv", self.ids[dst], _describe(data))
            node.receive(data, self.now_ms)
            self._settle(dst)
            return
        link = (src, dst)
        if self._epoch.get(link, 0) != epoch:
            self.dropped["closed"] += 1  # its connection was closed on the way
            return
        if self._links is not None:
            self._link(src, dst).delivered += 1
        stream = self._streams.get(link)
        if stream is None:
            stream = self._streams[link] = InboundStream(
                lambda: self.keyrings[dst], self._guards[dst]
            )
        inbound = stream.feed(data, self.now_ms)
        for reason in inbound.dropped:
            metrics.drop(reason)
            self.dropped["rejected"] += 1
        if inbound.close:
            self._close(link)
        for message, message_size in inbound.messages:
            metrics.received(message.kind, message_size)
            if self.trace is not None:
                self._record("recv", self.ids[dst], _describe(message))
            node.receive(message, self.now_ms)
        self._settle(dst)

    def _link(self, src: int, dst: int) -> LinkCounters:
        assert self._links is not None
        counters = self._links.get((src, dst))
        if counters is None:
            counters = self._links[(src, dst)] = LinkCounters()
        return counters

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

    def _metrics_snapshot(self, i: int) -> dict[str, Any]:
        snapshot = self.metrics[i].snapshot()
        snapshot.update(
            api.core_metrics(
                self.nodes[i],
                outbound_bytes=0,
                outbound_links=len(self._dialled[i]),
                replay_cache=len(self._guards[i]),
            )
        )
        return snapshot

    # ---- views -------------------------------------------------------------------------

    def live_ids(self) -> list[str]:
        """Nodes whose process runs (paused ones included)."""
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

    def link_counters(self) -> dict[tuple[str, str], LinkCounters]:
        """Every directed link that carried something, by (sender id, receiver id)."""
        if self._links is None:
            raise ValueError("link counters are off: construct with count_links=True")
        return {(self.ids[s], self.ids[d]): replace(c) for (s, d), c in self._links.items()}

    def link_counts(self) -> dict[tuple[str, str], int]:
        """Messages that entered each directed link, as its proxy would count them."""
        return {link: c.messages for link, c in self.link_counters().items()}


def _describe(message: Message) -> str:
    subjects = ",".join(f"{type(u).__name__}:{getattr(u, 'subject', '?')}" for u in message.updates)
    return f"{message.kind} from={message.sender} [{subjects}]"


def _describe_event(event: Event) -> str:
    if isinstance(event, MemberEvent):
        return f"member {event.member} {event.status.value} {event.incarnation}"
    return f"broadcast {event.id}"
