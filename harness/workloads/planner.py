"""The nemesis: partition shapes, and a scenario's steps compiled into operations.

Every random choice of a run (victims, sides of a partition, links of a storm, where
writes go) is drawn here, up front, from one ``random.Random(seed)``, while the plan
tracks which nodes are still up. So a scenario and a seed give exactly one sequence of
operations (:mod:`harness.workloads.operations`): ``plan(...)`` twice gives equal lists, and a run
replays from its seed. The interpreter (:mod:`harness.workloads.interpreter`) only executes it.

Shapes (Jepsen's, docs/protocol-notes.md), over the nodes up at that point:

``halves``          first half | second half, in id order
``random-halves``   a random half | the rest
``isolate-one``     one node | the rest
``majorities-ring`` nodes on a random ring, each keeps links to its nearest neighbours
                    so it sees a majority, and no two see the same majority
``bridge``          two halves cut from each other, one node linked to both
``one-way``         a random half cannot reach the rest; the rest still reach it
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

from gossipcert.harness.judging.bounds import evaluate
from gossipcert.harness.workloads import operations as o
from gossipcert.harness.workloads.broadcast import Broadcast
from gossipcert.harness.workloads.crdt import Crdt
from gossipcert.harness.workloads.faults import (
    Cut,
    Kill,
    Latency,
    Loss,
    Partition,
    Pause,
    Restart,
)
from gossipcert.harness.workloads.kv import Delete, Get, Put
from gossipcert.harness.workloads.leave import Leave
from gossipcert.harness.workloads.operations import Op
from gossipcert.harness.workloads.security import Intruder

# What a latency storm may add on the packet plane (netem's or the delay line's kinds).
LINE_EXTRAS = ("duplicate", "reorder", "rate_kbit")
SHAPES = ("halves", "random-halves", "isolate-one", "majorities-ring", "bridge", "one-way")

Link = tuple[str, str]


class PlanError(ValueError):
    """A scenario asks for something this cluster cannot give (too few nodes...)."""


def _between(groups: Sequence[Sequence[str]]) -> list[Link]:
    """Every directed link between different groups."""
    out = []
    for g1, g2 in itertools.permutations(range(len(groups)), 2):
        out += [(a, b) for a in groups[g1] for b in groups[g2]]
    return sorted(out)


def partition_shape(shape: str, nodes: Sequence[str], rng: random.Random,
                    target: str | None = None) -> dict[str, Any]:
    """Links to cut for ``shape``; ``groups`` too when groups describe the cut exactly
    (every link between groups, both ways, and no other)."""
    nodes = sorted(nodes)
    if len(nodes) < 2:
        raise PlanError(f"a {shape} partition needs at least 2 nodes up, found {len(nodes)}")
    if shape == "halves":
        half = len(nodes) // 2
        groups = [nodes[:half], nodes[half:]]
        return {"groups": groups, "links": _between(groups)}
    if shape == "random-halves":
        shuffled = nodes[:]
        rng.shuffle(shuffled)
        half = len(shuffled) // 2
        groups = [sorted(shuffled[:half]), sorted(shuffled[half:])]
        return {"groups": groups, "links": _between(groups)}
    if shape == "isolate-one":
        one = target if target is not None else rng.choice(nodes)
        if one not in nodes:
            raise PlanError(f"cannot isolate {one}: it is not up")
        groups = [[one], [n for n in nodes if n != one]]
        return {"groups": groups, "links": _between(groups)}
    if shape == "bridge":
        if len(nodes) < 3:
            raise PlanError("a bridge needs at least 3 nodes up")
        shuffled = nodes[:]
        rng.shuffle(shuffled)
        bridge, rest = shuffled[0], shuffled[1:]
        half = len(rest) // 2
        groups = [sorted(rest[:half]), sorted(rest[half:])]
        return {"groups": groups, "links": _between(groups), "bridge": bridge}
    if shape == "majorities-ring":
        ring = nodes[:]
        rng.shuffle(ring)
        n = len(ring)
        keep = math.ceil((n // 2) / 2)  # neighbours kept on each side
        links = []
        for i, j in itertools.permutations(range(n), 2):
            distance = min((i - j) % n, (j - i) % n)
            if distance > keep:
                links.append((ring[i], ring[j]))
        return {"ring": ring, "links": sorted(links)}
    if shape == "one-way":
        shuffled = nodes[:]
        rng.shuffle(shuffled)
        half = max(1, len(shuffled) // 2)
        senders, receivers = sorted(shuffled[:half]), sorted(shuffled[half:])
        links = sorted((a, b) for a in senders for b in receivers)
        return {"from": senders, "to": receivers, "links": links}
    raise PlanError(f"unknown partition shape {shape!r} (known: {', '.join(SHAPES)})")


def seconds(spec: Any, params: Mapping[str, float]) -> float:
    """A duration: a number of seconds, or ``{ms: "<expression over timing names>"}``."""
    if isinstance(spec, int | float) and not isinstance(spec, bool):
        return float(spec)
    if isinstance(spec, Mapping) and "ms" in spec:
        value = spec["ms"]
        ms = float(value) if isinstance(value, int | float) else evaluate(str(value), params)
        return ms / 1000.0
    raise PlanError(f"not a duration: {spec!r} (seconds, or {{ms: expression}})")


def _as_ms(spec: Any) -> Any:
    """A plain number of milliseconds as a duration spec (``{ms: n}``)."""
    return {"ms": spec} if isinstance(spec, int | float) and not isinstance(spec, bool) else spec


def default_partition_ms(params: Mapping[str, float]) -> float:
    """Longer than the suspicion timeout, so each side declares the other dead."""
    return min(params["suspicion_max_ms"],
               params["suspicion_min_ms"] + 3 * params["probe_interval_ms"] + 2000)


class _State:
    """Which nodes are up while the plan is drawn."""

    def __init__(self, nodes: Sequence[str]) -> None:
        self.nodes = list(nodes)
        self.down: set[str] = set()

    def up(self) -> list[str]:
        return [n for n in self.nodes if n not in self.down]


def _pick(state: _State, rng: random.Random, target: Any, *, spare_first: bool = False
          ) -> str:
    up = state.up()
    if isinstance(target, str) and target != "random":
        if target not in up:
            raise PlanError(f"target {target} is not up at this step")
        return target
    pool = up[1:] if spare_first and len(up) > 1 else up
    if not pool:
        raise PlanError("no node is up to target")
    return rng.choice(pool)


def _random_links(up: Sequence[str], rng: random.Random, fraction: float) -> list[Link]:
    every = list(itertools.permutations(sorted(up), 2))
    count = max(1, round(fraction * len(every)))
    return sorted(rng.sample(every, min(count, len(every))))




CRDT_NAMES = {"g-counter": "hits", "pn-counter": "stock", "or-set": "tags",
              "lww-register": "owner"}


def _crdt_op(rng: random.Random, node: str) -> Crdt:
    """One CRDT operation on ``node``, every type in turn likely."""
    kind = rng.choice(sorted(CRDT_NAMES))
    name = CRDT_NAMES[kind]
    if kind == "g-counter":
        return Crdt(node, name, kind, "increment", rng.randint(1, 3))
    if kind == "pn-counter":
        return Crdt(node, name, kind, rng.choice(["increment", "decrement"]),
                      rng.randint(1, 3))
    if kind == "or-set":
        return Crdt(node, name, kind, rng.choice(["add", "add", "remove"]),
                      f"e{rng.randrange(3)}")
    return Crdt(node, name, kind, "set", f"{node}-{rng.randrange(1000)}")


DEAD = ("dead", "left", "absent")


class _Planner:
    """Compiles one scenario's steps, tracking the nodes up and numbering the writes."""

    def __init__(self, nodes: Sequence[str], seed: int, params: Mapping[str, float],
                 quiet_s: float | None, partition_s: float | None) -> None:
        self.rng = random.Random(seed)
        self.state = _State(nodes)
        self.nodes = list(nodes)
        self.seed = seed
        self.params = params
        self.quiet_s = quiet_s
        self.partition_s = partition_s
        self.writes = 0

    def value(self, node: str) -> str:
        self.writes += 1
        return f"{node}/w{self.writes}"

    def put(self, node: str, key: str) -> Put:
        return Put(node, key, self.value(node))

    def step(self, index: int, step: Mapping[str, Any]) -> list[Op]:
        kind = str(step["kind"])
        rng, state, params = self.rng, self.state, self.params
        out: list[Op] = []
        if "at" in step:
            out.append(o.WaitUntil(round(seconds(step["at"], params) * 1000)))
        duration = seconds(step["duration"], params) if "duration" in step else None
        up = state.up()
        if kind == "join":
            out.append(o.AwaitMembers(requirement="MEM-JOIN"))
        elif kind == "quiet":
            assert duration is not None
            length = self.quiet_s if self.quiet_s is not None else duration
            out += [o.Phase("quiet", "start"),
                    # The planes' counters and the nodes' own at both ends: each node's
                    # real send rate (TIMING-TRAFFIC) and the background message rate.
                    o.ReadRound("traffic"), o.ReadRound("metrics"),
                    o.Note(f"quiet phase: {length:g} s with no faults"),
                    o.Wait(round(length * 1000)), o.ReadRound("events"),
                    o.ReadRound("metrics"), o.ReadRound("traffic"), o.Phase("quiet", "end")]
        elif kind == "sleep":
            assert duration is not None
            out.append(o.Wait(round(duration * 1000)))
        elif kind == "converge":
            out.append(o.AwaitConvergence(label="converge"))
        elif kind == "broadcast":
            out += self._broadcast(index, step)
        elif kind == "writes":
            out += self._writes(step)
        elif kind == "mv-writes":
            out += self._mv_writes(index, step)
        elif kind == "crdt":
            out += self._crdt(index, step)
        elif kind == "crdt-read":
            out.append(o.AwaitCrdt())
        elif kind == "kill":
            victim = _pick(state, rng, step.get("target", "random"), spare_first=True)
            state.down.add(victim)
            out += [Kill(victim),
                    o.AwaitMembers((victim,), DEAD, requirement="FD-DETECT")]
        elif kind == "partition":
            out += self._partition(index, step, duration)
        elif kind == "flap":
            a, b = sorted(rng.sample(sorted(up), 2))
            plane = str(step.get("plane", "auto"))
            down_s = seconds(step.get("down", 1.0), params)
            up_s = seconds(step.get("up", 1.0), params)
            cycles = int(step.get("cycles", 3))
            out.append(o.Note(f"flapping link {a} <-> {b}: {cycles} cycles of {down_s:.1f} s "
                              f"down / {up_s:.1f} s up"))
            flap = Partition(((a,), (b,)), plane=plane, shape="flap")
            for _ in range(cycles):
                out += [flap, o.Wait(round(down_s * 1000)), flap.heal(),
                        o.Wait(round(up_s * 1000))]
            out.append(o.AwaitConvergence(label="after flapping"))
        elif kind == "latency-storm":
            links = tuple(_random_links(up, rng, float(step.get("fraction", 0.5))))
            ms = {name: round(seconds(_as_ms(step.get(name, default)), params) * 1000)
                  for name, default in (("latency_ms", 100), ("jitter_ms", 0))}
            hold = duration if duration is not None else 5.0
            extra = tuple((name, float(step[name])) for name in LINE_EXTRAS if name in step)
            storm = Latency(links, ms["latency_ms"], ms["jitter_ms"], extra)
            out += [storm,
                    o.Phase("latency", "start", {"links": [list(x) for x in links], **ms}),
                    o.Note(f"latency storm: {ms['latency_ms']} ms (jitter {ms['jitter_ms']}) "
                           f"on {len(links)} links for {hold:.1f} s")]
            if step.get("writes", False):
                out += [self.put(n, f"key-storm-{n}") for n in up]
            out += [o.Wait(round(hold * 1000)), storm.heal(), o.Phase("latency", "end"),
                    o.AwaitConvergence(label="after the storm")]
        elif kind == "loss":
            links = tuple(_random_links(up, rng, float(step.get("fraction", 1.0))))
            probability = float(step.get("probability", 0.1))
            origin = _pick(state, rng, "random") if step.get("broadcast", False) else None
            hold = duration if duration is not None else 5.0
            lossy = Loss(links, probability)
            out += [lossy,
                    o.Phase("lossy", "start", {"links": [list(x) for x in links],
                                               "probability": probability})]
            if step.get("writes", False):
                out += [self.put(n, f"key-lossy-{n}") for n in up]
            msg_id = f"bcast-lossy-{index}"
            if origin is not None:
                out.append(Broadcast(origin, msg_id))
            out += [o.Wait(round(hold * 1000)), lossy.heal(), o.Phase("lossy", "end"),
                    o.AwaitConvergence(label="after loss")]
            if origin is not None:
                # Read back: the evidence of delivery for nodes that report no events.
                out.append(o.AwaitDelivery(msg_id))
        elif kind == "crash-restart":
            node = _pick(state, rng, step.get("target", "random"), spare_first=True)
            down_s = seconds(step.get("down", 1.0), params)
            up_s = seconds(step.get("up", 2.0), params)
            crash = Kill(node)
            for _ in range(int(step.get("cycles", 2))):
                out += [crash, o.Wait(round(down_s * 1000)), crash.heal(),
                        o.Wait(round(up_s * 1000))]
            out.append(o.AwaitConvergence(label="after crash-restart"))
        elif kind == "pause":
            node = _pick(state, rng, step.get("target", "random"), spare_first=True)
            hold = duration if duration is not None else default_partition_ms(params) / 1000
            pause = Pause(node)
            out += [pause, o.Wait(round(hold * 1000)), pause.heal(),
                    o.AwaitConvergence(label="after resume")]
        elif kind == "restart":
            node = _pick(state, rng, step.get("target", "random"), spare_first=True)
            out += [Restart(node), o.AwaitConvergence(label="after restart")]
        elif kind == "leave":
            node = _pick(state, rng, step.get("target", "random"), spare_first=True)
            state.down.add(node)
            out += [Leave(node),
                    o.AwaitMembers((node,), ("left", "absent"), requirement="FD-DETECT")]
        elif kind == "wrong-key-node":
            node = str(step.get("id", "x1"))
            if node in self.nodes:
                raise PlanError(f"wrong-key-node id {node!r} is a member's id")
            seed_from = _pick(state, rng, step.get("target", "random"))
            # Long enough for a join and a few push-pull exchanges to have happened.
            hold = duration if duration is not None else (
                2 * params["probe_interval_ms"] + 3 * params["push_pull_interval_ms"]) / 1000
            out.append(Intruder(node, seed_from, round(hold * 1000),
                                  f"bcast-{self.seed}-{index}-wrong-key"))
        else:
            raise PlanError(f"unknown step kind {kind!r}")
        return out

    def _broadcast(self, index: int, step: Mapping[str, Any]) -> list[Op]:
        """One broadcast, then reads until every live member has it. With
        ``kill_origin_after_first_hop`` the origin gets a SIGKILL as soon as one other
        member reports the message, so the rest can only get it by relay (or in
        anti-entropy), not from the origin's own retransmissions; then every member must
        mark the origin dead (the kill of FD-DETECT). Without the broadcast capability
        the kill and the detection still happen."""
        kill_origin = bool(step.get("kill_origin_after_first_hop", False))
        # An origin that will be killed is never the first node, as for a kill.
        origin = _pick(self.state, self.rng, step.get("origin", "random"),
                       spare_first=kill_origin)
        msg_id = f"bcast-{self.seed}-{index}"
        out: list[Op] = [Broadcast(origin, msg_id)]
        if kill_origin:
            others = tuple(n for n in self.state.up() if n != origin)
            self.state.down.add(origin)
            out += [o.AwaitDelivery(msg_id, any_of=others), Kill(origin),
                    o.Note(f"killed the origin {origin}: the rest must get {msg_id} by relay"),
                    o.AwaitDelivery(msg_id),
                    o.AwaitMembers((origin,), DEAD, requirement="FD-DETECT")]
        else:
            out.append(o.AwaitDelivery(msg_id))
        return out

    def _writes(self, step: Mapping[str, Any]) -> list[Op]:
        up = self.state.up()
        keys = [f"key-{i}" for i in range(int(step.get("keys", 6)))]
        puts: list[Op] = []
        for _ in range(int(step.get("puts", 24))):
            node, key = self.rng.choice(up), self.rng.choice(keys)
            puts.append(self.put(node, key))
        concurrent = keys[: int(step.get("concurrent_keys", 3))]
        # Deletes go to keys no concurrent write touches later, so a key that comes back
        # is a resurrection, not a newer write.
        spare = keys[len(concurrent):] or keys
        # ... and to keys some put wrote first: a delete buries a value, or tests nothing.
        written = {op.key for op in puts if isinstance(op, Put)}
        spare = [k for k in spare if k in written] or spare
        deletes: list[Op] = [Delete(self.rng.choice(up), self.rng.choice(spare))
                             for _ in range(int(step.get("deletes", 0)))]
        races: list[Op] = [o.Concurrent(tuple(self.put(n, key) for n in up))
                           for key in concurrent]
        return [
            # Just before the workload: messages per operation start here.
            o.ReadRound("metrics"), o.Phase("writes", "start", when="kv"),
            *puts, *deletes, *races, o.Phase("writes", "end", when="kv"),
            o.Note(f"writes: {len(puts)} puts, {len(deletes)} deletes, {len(concurrent)} "
                   "keys written concurrently by every node"),
            o.AwaitDigests(label="after writes"), o.ReadRound("metrics"),
        ]

    def _mv_writes(self, index: int, step: Mapping[str, Any]) -> list[Op]:
        """Siblings and causality under ``mv``: two blind concurrent puts make siblings;
        then a read-modify-write (get, put with its context) races one more blind put, so
        the final state must hold exactly the racer's value and the read-modify-write's."""
        up = self.state.up()
        if len(up) < 3:
            raise PlanError("mv-writes needs at least 3 nodes up")
        rounds = []
        for i in range(int(step.get("keys", 3))):
            a, b, c = self.rng.sample(up, 3)
            rounds.append((f"mv-{index}-{i}", sorted([a, b]), c, a))
        out: list[Op] = [o.Phase("writes", "start", when="kv")]
        for key, blind, _, _ in rounds:
            out.append(o.Concurrent(tuple(self.put(n, key) for n in blind)))
        out.append(o.AwaitDigests(label="blind writes"))
        for key, _, rmw, racer in rounds:
            out += [Get(rmw, key),
                    o.Concurrent((Put(rmw, key, self.value(rmw), with_context=True),
                                  self.put(racer, key)))]
        out += [o.Phase("writes", "end", when="kv"),
                o.AwaitDigests(label=f"mv writes on {len(rounds)} keys")]
        return out

    def _crdt(self, index: int, step: Mapping[str, Any]) -> list[Op]:
        """CRDT operations on random nodes; one add and remove of an or-set element raced
        on two nodes (add-wins decides); and one element added on a node and removed on
        another once that one has read it, so the remove observed its only add and the
        element must be gone for good (what a set that ignores removes gets wrong)."""
        up = self.state.up()
        ops: list[Op] = [o.ReadRound("metrics")]
        ops += [_crdt_op(self.rng, self.rng.choice(up)) for _ in range(int(step.get("ops", 16)))]
        a, b = self.rng.sample(up, 2)
        element = f"e{self.rng.randrange(3)}"
        name = CRDT_NAMES["or-set"]
        ops.append(o.Concurrent((Crdt(a, name, "or-set", "add", element),
                                 Crdt(b, name, "or-set", "remove", element))))
        adder, remover = self.rng.sample(up, 2)
        pinned = f"pinned-{index}"
        ops += [Crdt(adder, name, "or-set", "add", pinned),
                o.AwaitCrdtHas(remover, name, pinned),
                Crdt(remover, name, "or-set", "remove", pinned)]
        return ops

    def _partition(self, index: int, step: Mapping[str, Any], duration: float | None
                   ) -> list[Op]:
        """A partition held, then healed; with ``writes``/``crdt``/``broadcasts``, that
        workload runs while it holds. Broadcasts start on each side in turn (one-way: on
        the side that cannot reach the other) and are read back after the heal, until
        every live member has each one: a member that missed one owes it within the
        BCAST-DELIVERY bound counted from the heal plus ``heal_repair_ms``."""
        up = self.state.up()
        plane = str(step.get("plane", "auto"))
        shape = str(step.get("shape", "random-halves"))
        cut = partition_shape(shape, up, self.rng, step.get("target"))
        hold = duration if duration is not None else default_partition_ms(self.params) / 1000
        if self.partition_s is not None:
            hold = self.partition_s
        links = [tuple(x) for x in cut["links"]]
        if not links:
            return [o.Note(f"{shape}: nothing to cut among {len(up)} nodes")]
        groups = cut.get("groups")
        phase: dict[str, Any] = {"shape": shape, "links": [list(x) for x in links]}
        if groups is not None:
            phase["groups"] = groups
            fault: Partition | Cut = Partition(tuple(tuple(g) for g in groups), plane=plane,
                                               shape=shape)
        else:
            fault = Cut(tuple((a, b) for a, b in links), plane=plane, shape=shape)
        out: list[Op] = [fault]
        out += [o.Phase("partition", "start", phase),
                o.Note(f"{shape} partition: {_describe_cut(cut)} for {hold:.1f} s")]
        if step.get("writes", False):
            sides = groups if groups is not None else [[n] for n in up]
            for group in sides:
                for node in group:
                    out += [self.put(node, "key-partitioned"),
                            self.put(node, f"key-side-{group[0]}")]
        if step.get("crdt", False):
            out += [_crdt_op(self.rng, self.rng.choice(up)) for _ in range(8)]
            if groups is not None and len(groups) >= 2:
                # Add-wins, decided: an element added on one side, then added and removed
                # on the other, which cannot see the first add; it must survive the heal.
                name, element = CRDT_NAMES["or-set"], f"split-{index}"
                adder, remover = self.rng.choice(groups[0]), self.rng.choice(groups[1])
                out += [Crdt(adder, name, "or-set", "add", element),
                        Crdt(remover, name, "or-set", "add", element),
                        Crdt(remover, name, "or-set", "remove", element)]
        sent = []
        origins_from = groups if groups is not None else (
            [cut["from"]] if "from" in cut else [up])
        for k in range(int(step.get("broadcasts", 0))):
            origin = self.rng.choice(sorted(origins_from[k % len(origins_from)]))
            sent.append(f"bcast-{self.seed}-{index}-{k}")
            out.append(Broadcast(origin, sent[-1]))
        wait_ms = round(hold * 1000)
        if sent:
            # One read of every node soon after: for nodes without receive times, what
            # the origin's own side got while the partition held.
            early = min(wait_ms, 500)
            out += [o.Wait(early), o.ReadRound("broadcasts")]
            wait_ms -= early
        out += [o.Wait(wait_ms), fault.heal(), o.Phase("partition", "end"),
                o.Note("healed; waiting for membership and state to converge"),
                o.AwaitConvergence(label="after heal")]
        out += [o.AwaitDelivery(msg_id, after_heal=True) for msg_id in sent]
        return out


def _describe_cut(cut: Mapping[str, Any]) -> str:
    if "groups" in cut:
        text = " | ".join(",".join(g) for g in cut["groups"])
        return text + (f" (bridge {cut['bridge']})" if "bridge" in cut else "")
    if "ring" in cut:
        return "ring " + ",".join(cut["ring"])
    if "from" in cut:
        return f"{','.join(cut['from'])} -> {','.join(cut['to'])} cut one way"
    return f"{len(cut.get('links', []))} links"


def plan(steps: Sequence[Mapping[str, Any]], nodes: Sequence[str], seed: int,
         params: Mapping[str, float], *, quiet_s: float | None = None,
         partition_s: float | None = None) -> list[Op]:
    """Compile a scenario's steps into operations for these nodes and this seed
    (``quiet_s``/``partition_s`` override every quiet phase's and partition's length)."""
    planner = _Planner(nodes, seed, params, quiet_s, partition_s)
    out: list[Op] = []
    for index, step in enumerate(steps):
        out += planner.step(index, step)
    return out
