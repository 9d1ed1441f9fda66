"""Hypothesis strategies for sequences of operations: a workload with faults over it.

A sequence is drawn as a list of *choices* (a kind of step and a few small integers: which
node, which key, which side of a partition) and then built: :class:`SequenceBuilder`
walks the choices in order, keeps track of what the cluster is in (who is killed or
paused, whether links are cut or degraded, whether a partition has healed) and turns each
choice into the operations it means there, or into nothing when it cannot run there.
Hypothesis shrinks the choices, so every shrunk sequence is still one a cluster can run,
and a step that needs an earlier one (a resume, a start of a killed node) disappears with
it.

This module is the machinery every capability shares: the builder's state, the waits,
awaits and faults, and the rules that keep a sequence sound. Each capability's client
calls (puts, CRDT operations, broadcasts) are drawn and built by the rules in its own
module (:class:`GeneratorRules`), which :mod:`harness.workloads.capabilities` gathers.

Every sequence starts with every node seeing every other alive and ends healed: the
paused node resumed, links restored, killed nodes started again, then waits until the
cluster has converged (and every CRDT and broadcast used has), whose reads are the
final state the checkers judge. So a sequence runs the same on a fresh cluster, on one
reused from the previous example, and in simulation.

The rules below are there so that a correct implementation does not fail a MUST on a
sequence drawn here: each keeps a checker's assumptions true. Several checkers judge a
window that runs from an event to the end of the history (a view must settle on alive
for good, digests must stay equal), so what may follow an event is limited, not only
what may overlap it.

* At most a minority of the nodes is down (killed, paused or restarting) at a time, and
  client calls go to nodes that are up. A killed node comes back with ``start`` (same
  identity and data); ``restart`` is a crash-restart of a running node. Neither runs
  while links are cut or degraded. The first node is never killed: every other node was
  launched with it as its seed, and one started again while it is down never gets ready.
* A node whose writes (kv or CRDT) may not have left it yet is not crashed: a few gossip
  rounds pass first, and one that wrote across a cut is spared until convergence has
  been awaited after the heal. An implementation without durable storage loses what it
  alone holds, which KV-NO-LOST-WRITE excuses for one gossip interval and the CRDT
  checkers not at all.
* After a start or restart only waits, awaits, broadcasts and starts of other killed
  nodes follow (MEM-REJOIN wants the node seen alive for good, KV-AFTER-RESTART digests
  equal for good, from its readiness to the end).
* At most one pause per sequence, begun when no node is killed and no link is cut or
  degraded, with every write and broadcast made so far awaited first (digests equal,
  every member holds the message); no write or broadcast while it lasts and no process
  or network fault after it (FD-NO-FP-PAUSE judges its window until well after the
  resume, and KV-CONVERGENCE and BCAST-DELIVERY count a paused member as live).
* Latency and loss never overlap a cut or a pause, nor begin while views may still be
  catching up (an await of convergence comes first); their window ends at the next
  heal (FD-NO-FP-LATENCY and FD-NO-FP-LOSS count any live member declared dead in it).
  Latency plus jitter stays below the probe timeout and loss at most 10%.
* After a partition or cut heals, and until another one opens, no kill, restart, pause,
  latency or loss: PARTITION-HEAL and KV-AFTER-PARTITION want every view to settle on
  alive for good after a heal.
* No broadcast while links are cut, and every broadcast delivered before a cut opens:
  BCAST-DELIVERY's bound counts on anti-entropy to repair what rumors missed, and a cut
  takes peers out of it even for members on the origin's side.
* No await that cannot end while links are cut (it would only burn its bound).

Key spaces are small (``k0``, ``k1``), in a namespace given per sequence; written values
are unique (``n2/w3``: node and write number), so a model can tell every write apart.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gossipcert.harness.judging.bounds import derived_parameters
from gossipcert.harness.workloads import faults
from gossipcert.harness.workloads import operations as o
from gossipcert.harness.workloads.operations import Op
from hypothesis import strategies as st

__all__ = [
    "DEAD",
    "Choice",
    "GeneratorRules",
    "Rule",
    "SequenceBuilder",
    "Space",
    "choices",
    "fault_kinds",
    "sequence_problems",
    "sequences",
    "wait_lengths_ms",
    "with_namespace",
]

# What a member may report of a node that is gone (as the planner's kill step waits for).
DEAD = ("dead", "left", "absent")
# Process faults and network faults, for the pause rule.
_FAULT_KINDS = ("kill", "restart", "start", "pause", "partition", "cut", "latency", "loss")
_AWAITS = ("settle", "digests", "delivery", "detection")

Choice = tuple[Any, ...]


@dataclass(frozen=True)
class Space:
    """What sequences are drawn over: the nodes, what the implementation claims, the
    timing the run is judged at (wait lengths and latency levels follow it) and which
    fault planes the cluster has (``network``: cuts of any link, link or packet plane;
    ``latency``: the link plane; ``loss``: the packet plane)."""

    nodes: tuple[str, ...]
    capabilities: frozenset[str]
    timing: Mapping[str, Any] = field(default_factory=dict)
    policy: str = "lww"
    network: bool = True
    latency: bool = True
    loss: bool = True
    faults: bool = True
    keys: int = 2
    max_steps: int = 12
    namespace: str = ""

    def __post_init__(self) -> None:
        if len(self.nodes) < 3:
            raise ValueError("sequences need at least 3 nodes (a minority down is at least one)")
        if self.policy not in ("lww", "mv"):
            raise ValueError(f"unknown conflict policy {self.policy!r} (lww or mv)")

    @property
    def max_down(self) -> int:
        """How many nodes may be down at once: a minority."""
        return (len(self.nodes) - 1) // 2


Rule = Callable[..., None]


@dataclass(frozen=True)
class GeneratorRules:
    """What one capability adds to drawn sequences: the raw choices it offers over a
    space (none when the space does not claim it; ``node`` and ``key`` are the shared
    integer strategies), and the rule that turns each kind of its choices into
    operations on a :class:`SequenceBuilder`."""

    choices: Callable[[Space, st.SearchStrategy[int], st.SearchStrategy[int]],
                      list[st.SearchStrategy[Choice]]]
    rules: Mapping[str, Rule]


def choices(space: Space, generators: Sequence[GeneratorRules]) -> st.SearchStrategy[Choice]:
    """One raw choice: a wait, a client call, an await or a fault (the kind of fault and
    its arguments in one tuple, so faults as a whole are about as likely as a put, and
    more so, two alternatives out of the rest; each capability in ``generators`` adds
    its own client calls when ``space`` claims it). Earlier alternatives and smaller integers
    are simpler, so a shrunk sequence waits and writes rather than faults, on the first
    node and key."""
    n = len(space.nodes)
    node = st.integers(0, n - 1)
    key = st.integers(0, max(0, space.keys - 1))
    parts: list[st.SearchStrategy[Choice]] = [st.tuples(st.just("wait"), st.integers(0, 2))]
    for generator in generators:
        parts += generator.choices(space, node, key)
    parts.append(st.tuples(st.just("await"), st.integers(0, len(_AWAITS) - 1)))
    kinds = fault_kinds(space)
    for _ in range(2 if kinds else 0):
        parts.append(st.tuples(st.just("fault"), st.sampled_from(kinds), node,
                               st.integers(1, 2**n - 2), st.integers(0, 2), st.integers(0, 1),
                               st.booleans()))
    return st.one_of(*parts)


def wait_lengths_ms(timing: Mapping[str, Any], n: int) -> tuple[int, int, int]:
    """The waits a sequence chooses from: a couple of gossip rounds, a couple of probe
    periods, and long enough for a suspicion to run out (a partition held that long
    makes each side declare the other dead, as the shipped partition step does)."""
    return _wait_lengths(derived_parameters(dict(timing), n))


def _wait_lengths(params: Mapping[str, float]) -> tuple[int, int, int]:
    short = max(100, round(2 * params["gossip_interval_ms"]))
    medium = max(short + 100, round(2 * params["probe_interval_ms"]))
    long = min(params["suspicion_max_ms"],
               params["suspicion_min_ms"] + 3 * params["probe_interval_ms"] + 2000)
    return short, medium, max(medium + 100, round(long))


def sequences(space: Space, generators: Sequence[GeneratorRules]) -> st.SearchStrategy[list[Op]]:
    """Sequences of operations over ``space``, with the client calls of ``generators``
    (see the module docstring for the rules)."""
    rules = {kind: rule for generator in generators for kind, rule in generator.rules.items()}
    return st.lists(choices(space, generators), min_size=1, max_size=space.max_steps).map(
        lambda raw: SequenceBuilder(space, rules).build(raw))


def fault_kinds(space: Space) -> tuple[str, ...]:
    """The faults a sequence over ``space`` may draw, simplest first."""
    if not space.faults:
        return ()
    kinds = ["kill", "start", "restart"]
    if space.network:
        kinds += ["partition", "cut", "heal"]
    kinds += ["pause", "resume"]
    if space.latency:
        kinds.append("latency")
    if space.loss:
        kinds.append("loss")
    return tuple(kinds)


class SequenceBuilder:
    """Turns raw choices into a runnable sequence, tracking the cluster's state.

    ``rules`` turn the capabilities' client-call choices into operations; they read the
    state through the public helpers (:meth:`writable`, :meth:`pick`, :meth:`key`,
    :meth:`value`) and record their writes with :meth:`wrote`."""

    def __init__(self, space: Space, rules: Mapping[str, Rule]) -> None:
        self.space = space
        self.rules = rules  # each capability's client-call rules, by kind of choice
        self.nodes = list(space.nodes)
        self.ns = space.namespace
        params = derived_parameters(dict(space.timing), len(self.nodes))
        self.waits = _wait_lengths(params)
        self.probe_timeout_ms = params["probe_timeout_ms"]
        self.killed: list[str] = []
        self.paused: str | None = None
        self.paused_ever = False
        self.cut_open = False
        self.degraded = False
        self.healed_net = False  # a cut healed, and no cut opened since
        self.rejoined = False  # a node was started again: its windows run to the end
        self.unsettled = False  # views may still be catching up (a restart, a heal)
        self.unsynced_writes = False  # kv writes not yet awaited to equal digests
        # Nodes whose writes may still be theirs alone (kv or CRDT), "fresh" (a few
        # gossip rounds spread them) or "cut" (made across a cut: only an await of
        # convergence after the heal tells they spread). Such a node is not killed:
        # without durable storage its acknowledged writes would go with it.
        self.unshared: dict[str, str] = {}
        self.pending_broadcasts: list[str] = []
        self.crdts_used = False
        self.set_adds: list[tuple[str, str]] = []  # or-set elements added: (element, node)
        self.writes = 0
        self.broadcasts = 0
        self.out: list[Op] = []

    # ---- state -----------------------------------------------------------------------

    def up(self) -> list[str]:
        return [n for n in self.nodes if n not in self.killed and n != self.paused]

    def down(self) -> int:
        return len(self.killed) + (self.paused is not None)

    def value(self, node: str) -> str:
        self.writes += 1
        return f"{node}/w{self.writes}"

    def key(self, index: int) -> str:
        return f"{self.ns}k{index}"

    @staticmethod
    def pick(pool: Sequence[str], index: int) -> str:
        return pool[index % len(pool)]

    # ---- building --------------------------------------------------------------------

    def build(self, raw: Sequence[Choice]) -> list[Op]:
        self.out = [o.AwaitMembers(requirement="MEM-JOIN")]
        for choice in raw:
            self.step(choice)
        self.finish()
        return self.out

    def step(self, choice: Choice) -> None:
        kind, args = choice[0], choice[1:]
        if kind == "fault":
            self.fault(*args)
            return
        rule = self.rules.get(kind)
        if rule is not None:
            rule(self, *args)
            return
        handler = getattr(self, f"_{kind}", None)
        if handler is None:
            raise ValueError(f"unknown choice {kind!r}")
        handler(*args)

    def fault(self, kind: str, node: int, mask: int, which: int, level: int,
              bridge: bool) -> None:
        if kind in _FAULT_KINDS and self.paused_ever:
            return  # nothing more happens to the cluster once a node was paused
        if kind in ("kill", "start", "restart", "pause"):
            getattr(self, f"_{kind}")(node)
        elif kind == "partition":
            self._partition(mask, bridge)
        elif kind == "cut":
            self._cut(mask)
        elif kind in ("heal", "resume"):
            getattr(self, f"_{kind}")()
        elif kind in ("latency", "loss"):
            getattr(self, f"_{kind}")(which, node, level)
        else:
            raise ValueError(f"unknown fault {kind!r}")

    def finish(self) -> None:
        """Heal everything, start every killed node and wait for the cluster to settle."""
        if self.paused is not None:
            self._resume()
        if self.cut_open or self.degraded:
            self._heal()
        for node in list(self.killed):
            self.out.append(faults.Kill(node).heal())
        self.killed.clear()
        self.out.append(o.AwaitConvergence(label="end of the sequence"))
        if self.crdts_used:
            # A moment first, so no read of a CRDT is served in the instant of its last
            # operation (in simulation calls take no time at all).
            self.out += [o.Wait(self.waits[0]), o.AwaitCrdt()]
        for msg_id in self.pending_broadcasts:
            self.out.append(o.AwaitDelivery(msg_id))
        self.pending_broadcasts.clear()

    # ---- time ------------------------------------------------------------------------

    def _wait(self, index: int) -> None:
        self.out.append(o.Wait(self.waits[index % len(self.waits)]))
        if not self.cut_open:
            self.unshared = {n: how for n, how in self.unshared.items() if how == "cut"}

    def wrote(self, *nodes: str, kv: bool = True) -> None:
        for node in nodes:
            self.unshared[node] = "cut" if self.cut_open else self.unshared.get(node, "fresh")
        if kv:
            self.unsynced_writes = True

    def _await(self, index: int) -> None:
        what = _AWAITS[index % len(_AWAITS)]
        if self.cut_open:
            return
        if what == "settle":
            self.out.append(o.AwaitConvergence(label="settle"))
            self.unsettled = False
            self.unsynced_writes = False
            self.unshared.clear()
        elif what == "digests" and "kv" in self.space.capabilities:
            self.out.append(o.AwaitDigests(label="digests"))
            self.unsynced_writes = False
            self.unshared.clear()
        elif what == "delivery" and self.pending_broadcasts:
            self.out.append(o.AwaitDelivery(self.pending_broadcasts.pop()))
        elif what == "detection" and self.killed:
            self.out.append(o.AwaitMembers(tuple(self.killed), DEAD, requirement="FD-DETECT"))

    # ---- workload --------------------------------------------------------------------

    def writable(self) -> list[str]:
        return [] if self.paused is not None or self.rejoined else self.up()

    # ---- process faults --------------------------------------------------------------

    def _kill(self, node: int) -> None:
        if (self.paused is not None or self.healed_net or self.rejoined
                or self.down() >= self.space.max_down):
            return
        victim = self._victim(node)
        if victim is not None:
            self.killed.append(victim)
            self.out.append(faults.Kill(victim))

    def _victim(self, node: int, *, kill: bool = True) -> str | None:
        """A node to crash: none whose writes may be its alone since a cut; a few gossip
        rounds first for one whose writes are fresh."""
        pool = [n for n in self.up() if self.unshared.get(n) != "cut"]
        if kill:
            # The first node is every other node's seed at launch: a node started while it
            # is down finds no one to join and never gets ready (the planner spares it too).
            pool = [n for n in pool if n != self.nodes[0]]
        if not pool:
            return None
        victim = self.pick(pool, node)
        if victim in self.unshared:
            self._wait(1)
        return victim

    def _start(self, node: int) -> None:
        if not self.killed or self.cut_open or self.degraded:
            return
        target = self.pick(self.killed, node)
        self.killed.remove(target)
        self.out.append(faults.Start(target))
        self.unsettled = self.rejoined = True

    def _restart(self, node: int) -> None:
        if (self.cut_open or self.degraded or self.healed_net or self.rejoined
                or self.down() >= self.space.max_down):
            return
        target = self._victim(node, kill=False)
        if target is not None:
            self.out.append(faults.Restart(target))
            self.unsettled = self.rejoined = True

    def _pause(self, node: int) -> None:
        if (self.killed or self.cut_open or self.degraded or self.healed_net
                or self.rejoined or self.space.max_down < 1):
            return
        self._deliver_pending()
        if self.unsynced_writes:
            self.out.append(o.AwaitDigests(label="before the pause"))
            self.unsynced_writes = False
        target = self.pick(self.up(), node)
        self.out.append(faults.Pause(target))
        self.paused = target
        self.paused_ever = True

    def _resume(self) -> None:
        if self.paused is not None:
            self.out.append(faults.Pause(self.paused).heal())
            self.paused = None
            self.unsettled = True

    # ---- network faults --------------------------------------------------------------

    def _sides(self, mask: int) -> tuple[list[str], list[str]]:
        one = [n for i, n in enumerate(self.nodes) if mask >> i & 1]
        other = [n for n in self.nodes if n not in one]
        return one, other

    def _partition(self, mask: int, bridge: bool) -> None:
        if self.degraded or self.rejoined:
            return
        one, other = self._sides(mask)
        shape = "two-sided"
        if bridge and len(other) >= 2:
            other, shape = other[:-1], "bridge"  # the last node keeps links to both sides
        if not one or not other:
            return
        self._deliver_pending()
        self.out.append(faults.Partition((tuple(one), tuple(other)), shape=shape))
        self._open_cut()

    def _cut(self, mask: int) -> None:
        if self.degraded or self.rejoined:
            return
        senders, receivers = self._sides(mask)
        if not senders or not receivers:
            return
        links = tuple((a, b) for a in senders for b in receivers)
        self._deliver_pending()
        self.out.append(faults.Cut(links, shape="one-way"))
        self._open_cut()

    def _open_cut(self) -> None:
        self.cut_open, self.healed_net = True, False
        self.unshared = dict.fromkeys(self.unshared, "cut")

    def _deliver_pending(self) -> None:
        """Await every broadcast not yet awaited: a cut (or a pause) must not slow one
        down, as BCAST-DELIVERY's bound leaves no room for repairs through cut links."""
        for msg_id in self.pending_broadcasts:
            self.out.append(o.AwaitDelivery(msg_id))
        self.pending_broadcasts.clear()

    def _heal(self) -> None:
        if self.paused is not None:
            self._resume()
        if not (self.cut_open or self.degraded):
            return
        self.out.append(faults.Heal())
        if self.cut_open:
            self.healed_net = True
            self.unsettled = True
        self.cut_open = self.degraded = False

    def _links(self, which: int, node: int) -> tuple[tuple[str, str], ...]:
        """Every directed link, a node's links both ways, or one way between halves."""
        if which % 3 == 0:
            return tuple(itertools.permutations(self.nodes, 2))
        if which % 3 == 1:
            one = self.pick(self.nodes, node)
            return tuple(p for p in itertools.permutations(self.nodes, 2) if one in p)
        half = len(self.nodes) // 2
        return tuple((a, b) for a in self.nodes[:half] for b in self.nodes[half:])

    def _degrade(self) -> bool:
        if self.cut_open or self.paused is not None or self.healed_net or self.rejoined:
            return False
        if self.unsettled:
            self.out.append(o.AwaitConvergence(label="before degrading links"))
            self.unsettled = False
            self.unsynced_writes = False
            self.unshared.clear()
        return True

    def _latency(self, which: int, node: int, level: int) -> None:
        if not self._degrade():
            return
        timeout = self.probe_timeout_ms
        latency = max(1, round(timeout * (0.25 if level == 0 else 0.5)))
        jitter = round(timeout * 0.1) if level else 0
        self.out.append(faults.Latency(self._links(which, node), latency, jitter))
        self.degraded = True

    def _loss(self, which: int, node: int, level: int) -> None:
        if not self._degrade():
            return
        self.out.append(faults.Loss(self._links(which, node), 0.05 if level == 0 else 0.1))
        self.degraded = True


# ---- namespaces ----------------------------------------------------------------------


def with_namespace(ops: Sequence[Op], prefix: str) -> list[Op]:
    """``ops`` with every key, CRDT name and broadcast id prefixed: a fresh namespace for
    a sequence run on a cluster that still holds an earlier one's state."""
    return [op.with_namespace(prefix) for op in ops]


# ---- validity ------------------------------------------------------------------------


def sequence_problems(ops: Sequence[Op], nodes: Sequence[str]) -> list[str]:
    """What makes ``ops`` unrunnable or unsound on ``nodes`` (empty when it is fine):
    more than a minority down, calls to nodes that are down, a start of a running node,
    or an end that is not healed (a node still down, links still cut or degraded, no
    final await of convergence)."""
    problems: list[str] = []
    limit = (len(nodes) - 1) // 2
    killed: set[str] = set()
    paused: set[str] = set()
    open_faults = 0
    for i, op in enumerate(ops):
        where = f"ops[{i}] {op.describe()}"
        unknown = op.node_names() - set(nodes)
        if unknown:
            problems.append(f"{where}: unknown node(s) {sorted(unknown)}")
        calls = op.ops if isinstance(op, o.Concurrent) else (op,)
        for call in calls:
            node = getattr(call, "node", None) if call.client_call else None
            if node is not None and node in killed | paused:
                problems.append(f"{where}: a call to {node}, which is down")
        if isinstance(op, faults.Kill):
            if op.node in killed | paused:
                problems.append(f"{where}: {op.node} is already down")
            killed.add(op.node)
        elif isinstance(op, faults.Start):
            if op.node not in killed:
                problems.append(f"{where}: {op.node} is not down")
            killed.discard(op.node)
        elif isinstance(op, faults.Restart):
            if op.node in killed | paused:
                problems.append(f"{where}: {op.node} is down (start it instead)")
        elif isinstance(op, faults.Pause):
            if op.node in killed | paused:
                problems.append(f"{where}: {op.node} is already down")
            paused.add(op.node)
        elif isinstance(op, faults.Resume):
            if op.node not in paused:
                problems.append(f"{where}: {op.node} is not paused")
            paused.discard(op.node)
        elif isinstance(op, faults.Partition | faults.Cut | faults.Latency | faults.Loss):
            open_faults += 1
        elif isinstance(op, faults.Heal):
            open_faults = 0
        if len(killed) + len(paused) > limit:
            problems.append(f"{where}: {len(killed) + len(paused)} of {len(nodes)} nodes "
                            f"down, more than a minority ({limit})")
    if killed or paused:
        problems.append(f"ends with {sorted(killed | paused)} down")
    if open_faults:
        problems.append("ends with links cut or degraded (no heal after the last fault)")
    last = max((i for i, op in enumerate(ops) if isinstance(op, o.AwaitConvergence)), default=-1)
    quiet = (o.Wait, o.AwaitCrdt, o.AwaitDelivery, o.AwaitDigests, o.AwaitMembers, o.ReadRound)
    if last < 0 or not all(isinstance(op, quiet) for op in ops[last + 1:]):
        problems.append("does not end with an await of convergence (then only waits and reads)")
    return problems
