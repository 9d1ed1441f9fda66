"""The nemesis: partition shapes, and a scenario's steps resolved into a concrete schedule.

Every random choice of a run (victims, sides of a partition, links of a storm, where
writes go) is drawn here, up front, from one ``random.Random(seed)``, while the plan
tracks which nodes are still up. So a scenario and a seed give exactly one schedule:
``plan(...)`` twice gives equal lists, and a run replays from its seed. The runner
(:mod:`harness.scenario`) only executes the schedule.

Shapes (Jepsen's, REFERENCE.md), over the nodes up at that point:

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

from gossipcert.harness.bounds import evaluate

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


def _crdt_op(rng: random.Random, node: str) -> list[Any]:
    """One CRDT operation: ``[node, name, type, op, value]``, every type in turn likely."""
    kind = rng.choice(sorted(CRDT_NAMES))
    name = CRDT_NAMES[kind]
    if kind == "g-counter":
        return [node, name, kind, "increment", rng.randint(1, 3)]
    if kind == "pn-counter":
        return [node, name, kind, rng.choice(["increment", "decrement"]), rng.randint(1, 3)]
    if kind == "or-set":
        return [node, name, kind, rng.choice(["add", "add", "remove"]), f"e{rng.randrange(3)}"]
    return [node, name, kind, "set", f"{node}-{rng.randrange(1000)}"]


def plan(steps: Sequence[Mapping[str, Any]], nodes: Sequence[str], seed: int,
         params: Mapping[str, float]) -> list[dict[str, Any]]:
    """Resolve a scenario's steps into concrete actions for these nodes and this seed."""
    rng = random.Random(seed)
    state = _State(nodes)
    out: list[dict[str, Any]] = []
    writes = 0
    for index, step in enumerate(steps):
        kind = str(step["kind"])
        action: dict[str, Any] = {"step": index, "kind": kind}
        if "at" in step:
            action["at_s"] = seconds(step["at"], params)
        if "duration" in step:
            action["duration_s"] = seconds(step["duration"], params)
        up = state.up()
        if kind in ("join", "converge", "quiet", "sleep"):
            pass
        elif kind == "broadcast":
            kill_origin = bool(step.get("kill_origin_after_first_hop", False))
            # An origin that will be killed is never the first node, as for a kill.
            action["origin"] = _pick(state, rng, step.get("origin", "random"),
                                     spare_first=kill_origin)
            action["id"] = f"bcast-{seed}-{index}"
            if kill_origin:
                action["kill_origin_after_first_hop"] = True
                state.down.add(action["origin"])
        elif kind == "writes":
            keys = [f"key-{i}" for i in range(int(step.get("keys", 6)))]
            puts = []
            for _ in range(int(step.get("puts", 24))):
                writes += 1
                puts.append([rng.choice(up), rng.choice(keys), writes])
            action["puts"] = puts
            action["concurrent"] = keys[: int(step.get("concurrent_keys", 3))]
            # Deletes go to keys no concurrent write touches later, so a key that comes
            # back is a resurrection, not a newer write.
            spare = keys[len(action["concurrent"]):] or keys
            action["deletes"] = [[rng.choice(up), rng.choice(spare)]
                                 for _ in range(int(step.get("deletes", 0)))]
        elif kind == "mv-writes":
            if len(up) < 3:
                raise PlanError("mv-writes needs at least 3 nodes up")
            rounds = []
            for i in range(int(step.get("keys", 3))):
                a, b, c = rng.sample(up, 3)
                rounds.append({"key": f"mv-{index}-{i}", "blind": sorted([a, b]),
                               "rmw": c, "racer": a})
            action["keys"] = rounds
        elif kind == "crdt":
            ops = []
            for _ in range(int(step.get("ops", 16))):
                ops.append(_crdt_op(rng, rng.choice(up)))
            action["ops"] = ops
            a, b = rng.sample(up, 2)
            action["add_remove"] = {"add": a, "remove": b, "element": f"e{rng.randrange(3)}"}
            a, b = rng.sample(up, 2)
            action["pin"] = {"add": a, "remove": b, "element": f"pinned-{index}"}
        elif kind == "crdt-read":
            pass
        elif kind == "kill":
            victim = _pick(state, rng, step.get("target", "random"), spare_first=True)
            action["node"] = victim
            state.down.add(victim)
        elif kind in ("partition", "flap"):
            action["plane"] = step.get("plane", "auto")
            if kind == "partition":
                shape = str(step.get("shape", "random-halves"))
                action["shape"] = shape
                action.update(partition_shape(shape, up, rng, step.get("target")))
                action.setdefault("duration_s", default_partition_ms(params) / 1000.0)
                action["writes"] = bool(step.get("writes", False))
                if step.get("crdt", False):
                    action["crdt_ops"] = [_crdt_op(rng, rng.choice(up)) for _ in range(8)]
            else:
                a, b = sorted(rng.sample(sorted(up), 2))
                action["groups"] = [[a], [b]]
                action["links"] = [(a, b), (b, a)]
                action["cycles"] = int(step.get("cycles", 3))
                action["down_s"] = seconds(step.get("down", 1.0), params)
                action["up_s"] = seconds(step.get("up", 1.0), params)
        elif kind == "latency-storm":
            action["links"] = _random_links(up, rng, float(step.get("fraction", 0.5)))
            for name, default in (("latency_ms", 100), ("jitter_ms", 0)):
                action[name] = round(seconds(_as_ms(step.get(name, default)), params) * 1000)
            action.setdefault("duration_s", 5.0)
            action["writes"] = bool(step.get("writes", False))
        elif kind == "loss":
            action["links"] = _random_links(up, rng, float(step.get("fraction", 1.0)))
            action["probability"] = float(step.get("probability", 0.1))
            action["writes"] = bool(step.get("writes", False))
            action["broadcast"] = bool(step.get("broadcast", False))
            if action["broadcast"]:
                action["origin"] = _pick(state, rng, "random")
            action.setdefault("duration_s", 5.0)
        elif kind == "crash-restart":
            node = _pick(state, rng, step.get("target", "random"), spare_first=True)
            action["node"] = node
            action["cycles"] = int(step.get("cycles", 2))
            action["down_s"] = seconds(step.get("down", 1.0), params)
            action["up_s"] = seconds(step.get("up", 2.0), params)
        elif kind == "pause":
            action["node"] = _pick(state, rng, step.get("target", "random"), spare_first=True)
            action.setdefault("duration_s", default_partition_ms(params) / 1000.0)
        elif kind == "restart":
            node = _pick(state, rng, step.get("target", "random"), spare_first=True)
            action["node"] = node
        elif kind == "leave":
            node = _pick(state, rng, step.get("target", "random"), spare_first=True)
            action["node"] = node
            state.down.add(node)
        elif kind == "wrong-key-node":
            node = str(step.get("id", "x1"))
            if node in nodes:
                raise PlanError(f"wrong-key-node id {node!r} is a member's id")
            action["node"] = node
            action["seed"] = _pick(state, rng, step.get("target", "random"))
            # Long enough for a join and a few push-pull exchanges to have happened.
            action.setdefault("duration_s", (2 * params["probe_interval_ms"]
                                             + 3 * params["push_pull_interval_ms"]) / 1000.0)
            action["id"] = f"bcast-{seed}-{index}-wrong-key"
        else:
            raise PlanError(f"unknown step kind {kind!r}")
        if "links" in action:
            action["links"] = [list(link) for link in action["links"]]
        out.append(action)
    return out
