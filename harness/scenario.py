"""Scenario files: load and validate them, and run their schedule against a cluster.

A scenario (YAML in ``chaos/scenarios/``, schema ``specs/scenario.schema.json``) is a
list of steps. :func:`chaos.nemesis.plan` turns the steps into a concrete schedule from
the run's seed; :class:`ScenarioRunner` executes it, one registered step function per
kind. A new kind of step (multi-value writes, CRDT operations...) is one function
decorated with :func:`step` plus its entry in the schema and the planner.

Every wait is bounded by the requirement's own bound plus a margin, so a broken
implementation makes the run fail, never hang; every fault is confirmed in effect by the
cluster before the schedule goes on.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jsonschema
import yaml
from gossipcert.chaos.nemesis import CRDT_NAMES, PlanError, plan
from gossipcert.harness.bounds import derived_parameters, evaluate
from gossipcert.harness.cluster import NO_LATENCY, Cluster
from gossipcert.harness.errors import GossipcertError
from gossipcert.harness.manifest import Manifest, with_run_options
from gossipcert.harness.verdict import Requirement
from gossipcert.specs import spec_path

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "chaos" / "scenarios"
WAIT_MARGIN_S = 5.0


class ScenarioError(GossipcertError):
    """A scenario file is missing, unreadable, fails the schema, or cannot be planned."""


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    min_nodes: int
    steps: list[dict[str, Any]]
    path: Path
    conflict_policy: str | None = None  # overrides the manifest's, when it supports it
    encryption: bool = False             # run with a fresh gossip key (capability encryption)


def shipped_scenarios() -> dict[str, Path]:
    """The scenarios shipped in ``chaos/scenarios/``, by name."""
    return {p.stem: p for p in sorted(SCENARIO_DIR.glob("*.yaml"))}


@functools.cache
def _schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(spec_path("scenario.schema.json").read_text())
    return data


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A shipped scenario by name, or a scenario file by path; validated."""
    text = str(name_or_path)
    shipped = shipped_scenarios()
    if text in shipped:
        path = shipped[text]
    else:
        path = Path(text)
        if not path.is_file():
            known = ", ".join(shipped)
            raise ScenarioError(f"no scenario {text!r}: not a shipped name ({known}) "
                                "nor a file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"scenario {path}: cannot read: {str(exc).splitlines()[0]}") \
            from None
    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        # The deepest error names the offending field better than a failed oneOf/allOf.
        err = errors[0]
        best = jsonschema.exceptions.best_match([err]) if err.context else err
        where = "/".join(str(p) for p in best.absolute_path) or "(top level)"
        raise ScenarioError(f"scenario {path}: {where}: {best.message}")
    return Scenario(
        name=str(data["name"]),
        description=str(data.get("description", "")),
        min_nodes=int(data.get("min_nodes", 3)),
        steps=[dict(s) for s in data["steps"]],
        path=path,
        conflict_policy=data.get("conflict_policy"),
        encryption=bool(data.get("encryption", False)),
    )


def run_manifest(manifest: Manifest, scenario: Scenario) -> Manifest:
    """The manifest as this scenario runs it: its conflict policy and gossip key (see
    :func:`harness.manifest.with_run_options`). Its ``conflict_policy`` is the effective
    one the history's meta must record."""
    return with_run_options(manifest, conflict_policy=scenario.conflict_policy,
                            encryption=scenario.encryption)


def schedule(scenario: Scenario, nodes: list[str], seed: int,
             timing: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The concrete schedule of a scenario for these nodes, this seed and this timing."""
    if len(nodes) < scenario.min_nodes:
        raise ScenarioError(f"scenario {scenario.name} needs at least {scenario.min_nodes} "
                            f"nodes, got {len(nodes)}")
    params = derived_parameters(dict(timing), len(nodes))
    try:
        return plan(scenario.steps, nodes, seed, params)
    except (PlanError, ValueError) as exc:
        raise ScenarioError(f"scenario {scenario.name}: {exc}") from None


# ---- the step registry -----------------------------------------------------------------

StepFn = Callable[["ScenarioRunner", dict[str, Any]], None]
STEPS: dict[str, StepFn] = {}


def step(kind: str) -> Callable[[StepFn], StepFn]:
    """Register the function that executes steps of ``kind``."""
    def register(fn: StepFn) -> StepFn:
        STEPS[kind] = fn
        return fn
    return register


@dataclass
class RunOptions:
    quiet_s: float | None = None       # overrides every quiet step's duration
    partition_s: float | None = None   # overrides every partition step's duration
    progress: Callable[[str], None] = field(default=lambda line: None)
    timing: Mapping[str, Any] | None = None  # judged timing (default: the manifest's)


class ScenarioRunner:
    """Executes a planned schedule on a started cluster, writing phases into its history."""

    def __init__(self, cluster: Cluster, catalogue: list[Requirement],
                 actions: list[dict[str, Any]], opts: RunOptions) -> None:
        self.cluster = cluster
        self.history = cluster.history
        self.actions = actions
        self.opts = opts
        self.progress = opts.progress
        timing = opts.timing if opts.timing is not None else cluster.manifest.timing
        self.params = derived_parameters(timing, len(cluster.node_ids))
        self.bounds_ms = {
            r.id: float(evaluate(r.bound, self.params)) for r in catalogue if r.bound
        }
        self.capabilities = set(cluster.manifest.capabilities)
        self._write_no = 0
        self._round_no = 0
        self.crdt_types: dict[str, str] = {}
        self._t0 = 0.0

    def wait_s(self, requirement_id: str, default_ms: float = 10_000) -> float:
        return self.bounds_ms.get(requirement_id, default_ms) / 1000.0 + WAIT_MARGIN_S

    def run(self) -> None:
        self._t0 = time.monotonic()
        for action in self.actions:
            at = action.get("at_s")
            if at is not None:
                delay = self._t0 + float(at) - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            STEPS[action["kind"]](self, action)
        self.cluster.poll_events()

    # ---- helpers shared by steps ------------------------------------------------------

    def poll(self, predicate: Callable[[], bool], timeout_s: float, every_s: float) -> float:
        """Seconds until ``predicate`` held, or -1 after ``timeout_s``."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            if predicate():
                return time.monotonic() - t0
            time.sleep(every_s)
        return -1.0

    def all_see(self, expected: list[str], statuses: tuple[str, ...] = ("alive",)) -> bool:
        """Every live node reports every one of ``expected`` in one of ``statuses``."""
        for observer, reply in self.cluster.read_round("members").items():
            if not reply.ok:
                return False
            seen = {m["id"]: m["status"] for m in reply.body.get("members", [])}
            if any(seen.get(n, "absent") not in statuses for n in expected if n != observer):
                return False
        return True

    def digests_equal(self) -> bool:
        replies = self.cluster.read_round("kv")
        digests = {r.body.get("digest") for r in replies.values() if r.ok}
        return len(digests) == 1 and all(r.ok for r in replies.values())

    def put(self, node_id: str, key: str) -> None:
        self._write_no += 1
        value = f"{node_id}/w{self._write_no}"
        client = self.cluster.client(node_id)
        self.cluster.call(node_id, "put", {"key": key, "value": value},
                          lambda: client.put(key, value))

    def concurrent_puts(self, key: str, nodes: list[str]) -> None:
        barrier = threading.Barrier(len(nodes))
        values = {}
        for node_id in nodes:
            self._write_no += 1
            values[node_id] = f"{node_id}/w{self._write_no}"

        def one(node_id: str) -> None:
            barrier.wait()
            client = self.cluster.client(node_id)
            self.cluster.call(node_id, "put", {"key": key, "value": values[node_id]},
                              lambda: client.put(key, values[node_id]))

        threads = [threading.Thread(target=one, args=(n,)) for n in nodes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def converge(self, label: str, requirement: str = "PARTITION-HEAL") -> None:
        """Wait until every live node sees every live node alive and kv digests agree."""
        live = self.cluster.live_nodes()

        def converged() -> bool:
            alive = self.all_see(live)
            return alive and ("kv" not in self.capabilities or self.digests_equal())

        took = self.poll(converged, self.wait_s(requirement), 0.2)
        self.progress(f"{label}: " + (f"converged in {took:.1f} s" if took >= 0
                                      else "did not converge"))

    def metrics_round(self) -> None:
        """Read every live node's message counters (BCAST-MSGS-PER-OP)."""
        if "metrics" in self.capabilities:
            self.cluster.read_round("metrics")

    def delete(self, node_id: str, key: str) -> None:
        client = self.cluster.client(node_id)
        self.cluster.call(node_id, "delete", {"key": key}, lambda: client.delete(key))

    def crdt_op(self, node_id: str, name: str, crdt_type: str, op: str, value: Any) -> None:
        self.crdt_types[name] = crdt_type
        client = self.cluster.client(node_id)
        self.cluster.call(node_id, "crdt",
                          {"name": name, "type": crdt_type, "op": op, "value": value},
                          lambda: client.request("POST", f"/v1/crdt/{quote(name, safe='')}",
                                                 {"type": crdt_type, "op": op,
                                                  "value": value}))

    def phase(self, name: str, edge: str, **args: Any) -> None:
        self.history.append("phase", name, args={"edge": edge, **args})

    def hold(self, seconds: float) -> None:
        """Wait while a fault holds, reading member views each second and kv digests twice
        a second: evidence for the checkers of what every node held meanwhile, so that a
        convergence reached during the fault is seen when it happens, not after it."""
        deadline = time.monotonic() + seconds
        next_members = time.monotonic() + 1.0
        next_kv = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            now = time.monotonic()
            if now >= next_members:
                self.cluster.read_round("members")
                next_members = now + 1.0
            if "kv" in self.capabilities and now >= next_kv:
                self.cluster.read_round("kv")
                next_kv = now + 0.5
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    def links(self, action: Mapping[str, Any]) -> list[tuple[str, str]]:
        return [(str(a), str(b)) for a, b in action.get("links", [])]


# ---- steps -----------------------------------------------------------------------------


@step("join")
def join(r: ScenarioRunner, a: dict[str, Any]) -> None:
    live = r.cluster.live_nodes()
    took = r.poll(lambda: r.all_see(live), r.wait_s("MEM-JOIN"), 0.1)
    r.progress(f"membership: every node sees all {len(live)} alive"
               if took >= 0 else "membership: not every node sees every node alive")


@step("quiet")
def quiet(r: ScenarioRunner, a: dict[str, Any]) -> None:
    duration = r.opts.quiet_s if r.opts.quiet_s is not None else float(a["duration_s"])
    r.phase("quiet", "start")
    # The planes' counters at both ends: each node's real send rate (TIMING-TRAFFIC).
    r.cluster.traffic()
    r.metrics_round()  # with the one at the end: the background message rate
    r.progress(f"quiet phase: {duration:g} s with no faults")
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        r.cluster.read_round("members")
        time.sleep(0.5)
    r.cluster.poll_events()
    r.metrics_round()
    r.cluster.traffic()
    r.phase("quiet", "end")


@step("sleep")
def sleep(r: ScenarioRunner, a: dict[str, Any]) -> None:
    r.hold(float(a["duration_s"]))


@step("converge")
def converge(r: ScenarioRunner, a: dict[str, Any]) -> None:
    r.converge("converge")


@step("broadcast")
def broadcast(r: ScenarioRunner, a: dict[str, Any]) -> None:
    """One broadcast from ``origin``, then reads until every live member has it.

    With ``kill_origin_after_first_hop`` the origin is killed (SIGKILL) as soon as one
    other member reports the message, so the rest can only get it from members that
    relay it (or carry it in anti-entropy), not from the origin's own retransmissions;
    then every member must mark the origin dead (the kill of FD-DETECT). The plan counts
    the origin down after this step, with or without the broadcast capability."""
    origin, msg_id = str(a["origin"]), str(a["id"])
    kill_origin = bool(a.get("kill_origin_after_first_hop", False))
    if "broadcast" not in r.capabilities:
        if kill_origin:
            r.cluster.kill(origin)
            _await_dead(r, origin)
        return
    client = r.cluster.client(origin)
    r.cluster.call(origin, "broadcast", {"id": msg_id, "payload": {"hello": origin}},
                   lambda: client.broadcast(msg_id, {"hello": origin}))

    def has_it(node_id: str) -> bool:
        return _has_broadcast(r, node_id, msg_id)

    if kill_origin:
        others = [n for n in r.cluster.live_nodes() if n != origin]
        # No pause between reads: the origin must die before its next retransmission.
        hop = r.poll(lambda: any(has_it(n) for n in others), r.wait_s("BCAST-DELIVERY"), 0.0)
        r.cluster.kill(origin)
        r.progress(f"broadcast {msg_id} from {origin}: "
                   + (f"first hop after {hop:.2f} s" if hop >= 0 else "no member got it")
                   + f"; killed {origin} with SIGKILL, the rest must get it by relay")

    _await_delivery(r, origin, msg_id)
    if kill_origin:
        _await_dead(r, origin)


def _has_broadcast(r: ScenarioRunner, node_id: str, msg_id: str) -> bool:
    client = r.cluster.client(node_id)
    reply = r.cluster.call(node_id, "broadcasts", {}, client.broadcasts)
    return reply.ok and any(x.get("id") == msg_id for x in reply.body.get("received", []))


def _await_delivery(r: ScenarioRunner, origin: str, msg_id: str) -> None:
    """Read every live member's broadcasts until all have ``msg_id``: the evidence of
    BCAST-DELIVERY for nodes that report no events of their own."""

    def delivered() -> bool:
        ok = True
        for node_id in r.cluster.live_nodes():
            ok = _has_broadcast(r, node_id, msg_id) and ok
        return ok

    took = r.poll(delivered, r.wait_s("BCAST-DELIVERY"), 0.2)
    r.progress(f"broadcast {msg_id} from {origin}: "
               + (f"delivered everywhere in {took:.1f} s" if took >= 0
                  else "not delivered everywhere"))


def _await_dead(r: ScenarioRunner, victim: str) -> None:
    r.progress(f"waiting for every member to mark {victim} dead")
    took = r.poll(lambda: r.all_see([victim], ("dead", "left", "absent")),
                  r.wait_s("FD-DETECT"), 0.2)
    r.progress(f"{victim} " + (f"marked dead everywhere after {took:.1f} s"
                               if took >= 0 else "not marked dead everywhere"))


@step("writes")
def writes(r: ScenarioRunner, a: dict[str, Any]) -> None:
    if "kv" not in r.capabilities:
        return
    live = r.cluster.live_nodes()
    r.metrics_round()  # just before the workload: messages per operation start here
    r.phase("writes", "start")
    for node_id, key, _ in a["puts"]:
        if node_id in live:
            r.put(str(node_id), str(key))
    for node_id, key in a.get("deletes", []):
        if node_id in live:
            r.delete(str(node_id), str(key))
    for key in a["concurrent"]:
        r.concurrent_puts(str(key), live)
    r.phase("writes", "end")
    r.progress(f"writes: {r._write_no} puts so far, {len(a.get('deletes', []))} deletes, "
               f"{len(a['concurrent'])} keys written concurrently by every node")
    took = r.poll(r.digests_equal, r.wait_s("KV-CONVERGENCE"), 0.1)
    r.metrics_round()  # once the writes have spread
    r.progress("after writes: " + (f"digests equal after {took:.1f} s" if took >= 0
                                   else "digests still differ"))


@step("mv-writes")
def mv_writes(r: ScenarioRunner, a: dict[str, Any]) -> None:
    """Siblings and causality under ``mv``: two blind concurrent puts make siblings; then a
    read-modify-write (get, put with its context) races one more blind put, so the final
    state must hold exactly the racer's value and the read-modify-write's."""
    if "kv" not in r.capabilities:
        return
    r.phase("writes", "start")
    for plan_ in a["keys"]:
        key = str(plan_["key"])
        r.concurrent_puts(key, [str(n) for n in plan_["blind"]])
    r.poll(r.digests_equal, r.wait_s("KV-CONVERGENCE"), 0.1)
    for plan_ in a["keys"]:
        key, rmw, racer = str(plan_["key"]), str(plan_["rmw"]), str(plan_["racer"])
        client = r.cluster.client(rmw)
        seen = r.cluster.call(rmw, "get", {"key": key}, lambda c=client, k=key: c.get(k))
        context = seen.body.get("context") if seen.ok and isinstance(seen.body, dict) else None
        r._write_no += 1
        value = f"{rmw}/w{r._write_no}"
        args = {"key": key, "value": value, "context": context}
        _race(
            functools.partial(r.cluster.call, rmw, "put", args,
                              functools.partial(client.put, key, value, context)),
            functools.partial(r.put, racer, key),
        )
    r.phase("writes", "end")
    took = r.poll(r.digests_equal, r.wait_s("KV-CONVERGENCE"), 0.1)
    r.progress(f"mv writes on {len(a['keys'])} keys: "
               + (f"digests equal after {took:.1f} s" if took >= 0 else "digests differ"))


@step("crdt")
def crdt(r: ScenarioRunner, a: dict[str, Any]) -> None:
    """CRDT operations on random nodes; one add and remove of an or-set element raced on
    two nodes (add-wins decides); and one element added on a node and removed on another
    once that one has read it, so the remove observed its only add and the element must
    be gone for good (what a set that ignores removes gets wrong)."""
    if "crdt" not in r.capabilities:
        return
    live = r.cluster.live_nodes()
    r.metrics_round()
    for op in a["ops"]:
        if str(op[0]) in live:
            r.crdt_op(*op)
    pair = a["add_remove"]
    _race(*(
        functools.partial(r.crdt_op, str(pair[which]), CRDT_NAMES["or-set"], "or-set", which,
                          pair["element"])
        for which in ("add", "remove")
    ))
    pin = a.get("pin")
    if pin and str(pin["add"]) in live and str(pin["remove"]) in live:
        _add_then_observed_remove(r, str(pin["add"]), str(pin["remove"]), str(pin["element"]))
    r.progress(f"crdt: {len(a['ops']) + 2} operations on {len(r.crdt_types)} CRDTs")


def _add_then_observed_remove(r: ScenarioRunner, adder: str, remover: str, element: str) -> None:
    name = CRDT_NAMES["or-set"]
    r.crdt_op(adder, name, "or-set", "add", element)
    client = r.cluster.client(remover)

    def seen() -> bool:
        reply = r.cluster.call(remover, "crdt_read", {"name": name},
                               lambda: client.request("GET", f"/v1/crdt/{quote(name, safe='')}"))
        value = reply.body.get("value") if reply.ok and isinstance(reply.body, dict) else None
        return isinstance(value, list) and element in value

    if r.poll(seen, r.wait_s("KV-CONVERGENCE"), 0.1) >= 0:
        r.crdt_op(remover, name, "or-set", "remove", element)
    else:
        r.progress(f"crdt: {remover} never read {element} added on {adder}; no remove made")


@step("crdt-read")
def crdt_read(r: ScenarioRunner, a: dict[str, Any]) -> None:
    """Read every CRDT on every live node until they agree: the final values judged."""
    names = sorted(r.crdt_types)

    def agree() -> bool:
        values: dict[str, set[str]] = {name: set() for name in names}
        r._round_no += 1
        for node_id in r.cluster.live_nodes():
            client = r.cluster.client(node_id)
            for name in names:
                reply = r.cluster.call(node_id, "crdt_read",
                                       {"name": name, "round": r._round_no},
                                       lambda c=client, x=name: c.request(
                                           "GET", f"/v1/crdt/{quote(x, safe='')}"))
                if not reply.ok:
                    return False
                values[name].add(json.dumps(_canonical(reply.body.get("value")),
                                            sort_keys=True))
        return all(len(v) == 1 for v in values.values())

    took = r.poll(agree, r.wait_s("KV-CONVERGENCE"), 0.3)
    r.progress(f"crdt reads: {len(names)} CRDTs " + (f"agree after {took:.1f} s"
                                                     if took >= 0 else "still disagree"))


def _race(*calls: Callable[[], Any]) -> None:
    """Run calls on threads released together: concurrent writes, for real."""
    barrier = threading.Barrier(len(calls))

    def one(call: Callable[[], Any]) -> None:
        barrier.wait()
        call()

    threads = [threading.Thread(target=one, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _canonical(value: Any) -> Any:
    return sorted(value, key=str) if isinstance(value, list) else value


@step("kill")
def kill(r: ScenarioRunner, a: dict[str, Any]) -> None:
    victim = str(a["node"])
    r.cluster.kill(victim)
    r.progress(f"killed {victim} with SIGKILL; waiting for every member to mark it dead")
    took = r.poll(lambda: r.all_see([victim], ("dead", "left", "absent")),
                  r.wait_s("FD-DETECT"), 0.2)
    r.progress(f"{victim} " + (f"marked dead everywhere after {took:.1f} s"
                               if took >= 0 else "not marked dead everywhere"))


def _describe_cut(a: Mapping[str, Any]) -> str:
    if "groups" in a:
        text = " | ".join(",".join(g) for g in a["groups"])
        return text + (f" (bridge {a['bridge']})" if "bridge" in a else "")
    if "ring" in a:
        return "ring " + ",".join(a["ring"])
    if "from" in a:
        return f"{','.join(a['from'])} -> {','.join(a['to'])} cut one way"
    return f"{len(a.get('links', []))} links"


@step("partition")
def partition(r: ScenarioRunner, a: dict[str, Any]) -> None:
    links = r.links(a)
    hold_s = r.opts.partition_s if r.opts.partition_s is not None else float(a["duration_s"])
    groups = a.get("groups")
    if not links:
        r.progress(f"{a['shape']}: nothing to cut among {len(r.cluster.live_nodes())} nodes")
        return
    r.cluster.cut(links, plane=str(a["plane"]), groups=groups, shape=str(a["shape"]))
    r.phase("partition", "start", shape=a["shape"], links=[list(x) for x in links],
            **({"groups": groups} if groups is not None else {}))
    r.progress(f"{a['shape']} partition ({r.cluster.plane_for(str(a['plane']))} plane): "
               f"{_describe_cut(a)} for {hold_s:.1f} s")
    if a.get("writes") and "kv" in r.capabilities:
        sides = groups if groups is not None else [[n] for n in r.cluster.live_nodes()]
        for group in sides:
            for node_id in group:
                if node_id in r.cluster.live_nodes():
                    r.put(node_id, "key-partitioned")
                    r.put(node_id, f"key-side-{group[0]}")
    if a.get("crdt_ops") and "crdt" in r.capabilities:
        for op in a["crdt_ops"]:
            if str(op[0]) in r.cluster.live_nodes():
                r.crdt_op(*op)
    r.hold(hold_s)
    r.cluster.heal()
    r.phase("partition", "end")
    r.progress("healed; waiting for membership and state to converge")
    r.converge("after heal")


@step("flap")
def flap(r: ScenarioRunner, a: dict[str, Any]) -> None:
    links = r.links(a)
    (x, y) = a["groups"][0][0], a["groups"][1][0]
    r.progress(f"flapping link {x} <-> {y}: {a['cycles']} cycles of "
               f"{a['down_s']:.1f} s down / {a['up_s']:.1f} s up")
    for _ in range(int(a["cycles"])):
        r.cluster.cut(links, plane=str(a["plane"]), groups=a["groups"], shape="flap")
        r.hold(float(a["down_s"]))
        r.cluster.heal()
        r.hold(float(a["up_s"]))
    r.converge("after flapping")


@step("latency-storm")
def latency_storm(r: ScenarioRunner, a: dict[str, Any]) -> None:
    links = r.links(a)
    if r.cluster.links is None:
        # Without per-link proxies (routing: none) nothing on this kernel can delay
        # packets (no netem): the window is recorded as skipped, so FD-NO-FP-LATENCY
        # says why it stayed untested, and the rest of the scenario still runs.
        r.phase("latency", "start", skipped=NO_LATENCY)
        r.phase("latency", "end")
        r.progress(f"latency storm skipped: {NO_LATENCY}")
        return
    r.cluster.latency(links, int(a["latency_ms"]), int(a["jitter_ms"]))
    r.phase("latency", "start", links=[list(x) for x in links], latency_ms=a["latency_ms"],
            jitter_ms=a["jitter_ms"])
    r.progress(f"latency storm: {a['latency_ms']} ms (jitter {a['jitter_ms']}) on "
               f"{len(links)} links for {a['duration_s']:.1f} s")
    if a.get("writes") and "kv" in r.capabilities:
        for node_id in r.cluster.live_nodes():
            r.put(node_id, f"key-storm-{node_id}")
    r.hold(float(a["duration_s"]))
    r.cluster.heal()
    r.phase("latency", "end")
    r.converge("after the storm")


@step("loss")
def loss(r: ScenarioRunner, a: dict[str, Any]) -> None:
    links = r.links(a)
    r.cluster.loss(links, float(a["probability"]))
    r.phase("lossy", "start", links=[list(x) for x in links], probability=a["probability"])
    r.progress(f"packet loss {a['probability']:.0%} on {len(links)} links "
               f"for {a['duration_s']:.1f} s")
    t0 = time.monotonic()
    if a.get("writes") and "kv" in r.capabilities:
        for node_id in r.cluster.live_nodes():
            r.put(node_id, f"key-lossy-{node_id}")
    if a.get("broadcast") and "broadcast" in r.capabilities:
        origin = str(a["origin"])
        client = r.cluster.client(origin)
        msg_id = f"bcast-lossy-{a['step']}"
        r.cluster.call(origin, "broadcast", {"id": msg_id, "payload": {"hello": origin}},
                       lambda: client.broadcast(msg_id, {"hello": origin}))
    r.hold(max(0.0, float(a["duration_s"]) - (time.monotonic() - t0)))
    r.cluster.heal()
    r.phase("lossy", "end")
    r.converge("after loss")
    if a.get("broadcast") and "broadcast" in r.capabilities:
        _await_delivery(r, str(a["origin"]), f"bcast-lossy-{a['step']}")


@step("crash-restart")
def crash_restart(r: ScenarioRunner, a: dict[str, Any]) -> None:
    node = str(a["node"])
    for cycle in range(int(a["cycles"])):
        r.cluster.kill(node)
        r.progress(f"crash-restart {cycle + 1}/{a['cycles']}: killed {node}, down "
                   f"{a['down_s']:.1f} s")
        r.hold(float(a["down_s"]))
        r.cluster.restart(node)
        r.progress(f"restarted {node} with the same identity")
        r.hold(float(a["up_s"]))
    r.converge("after crash-restart")


@step("restart")
def restart(r: ScenarioRunner, a: dict[str, Any]) -> None:
    r.cluster.restart(str(a["node"]))
    r.progress(f"restarted {a['node']}")
    r.converge("after restart")


@step("pause")
def pause(r: ScenarioRunner, a: dict[str, Any]) -> None:
    node = str(a["node"])
    r.cluster.pause(node)
    r.progress(f"paused {node} (SIGSTOP) for {a['duration_s']:.1f} s")
    r.hold(float(a["duration_s"]))
    r.cluster.resume(node)
    r.progress(f"resumed {node}")
    r.converge("after resume")


@step("leave")
def leave(r: ScenarioRunner, a: dict[str, Any]) -> None:
    node = str(a["node"])
    r.cluster.leave(node)
    took = r.poll(lambda: r.all_see([node], ("left", "absent")), r.wait_s("FD-DETECT"), 0.2)
    r.progress(f"{node} left gracefully; " + (f"seen left everywhere after {took:.1f} s"
                                              if took >= 0 else "not seen left everywhere"))


@step("wrong-key-node")
def wrong_key_node(r: ScenarioRunner, a: dict[str, Any]) -> None:
    """SEC-WRONG-KEY: an extra node with a key of its own, seeded with a live member's
    address, tries a write and a broadcast; members are read throughout (they must never
    list it alive or suspect, nor receive its broadcast); then it is stopped."""
    if "encryption" not in r.capabilities or r.cluster.manifest.gossip_key is None:
        r.progress("wrong-key node: skipped (the run has no gossip key: the scenario needs "
                   "encryption, the manifest capability encryption and key_args)")
        return
    node, seed_from = str(a["node"]), str(a["seed"])
    if seed_from not in r.cluster.live_nodes():
        live = r.cluster.live_nodes()
        if not live:
            r.progress("wrong-key node: skipped (no member is up to seed it)")
            return
        seed_from = live[0]
    r.cluster.start_intruder(node, seed_from)
    r.phase("wrong-key", "start", node=node, seed=seed_from)
    r.progress(f"wrong-key node {node} started, seeded with {seed_from}; holding "
               f"{a['duration_s']:.1f} s")
    try:
        client = r.cluster.client(node)
        if "kv" in r.capabilities:
            key, value = f"key-wrong-key-{node}", f"{node}/intruder"
            r.cluster.call(node, "put", {"key": key, "value": value},
                           lambda: client.put(key, value))
        if "broadcast" in r.capabilities:
            msg_id = str(a["id"])
            r.cluster.call(node, "broadcast", {"id": msg_id, "payload": {"hello": node}},
                           lambda: client.broadcast(msg_id, {"hello": node}))
        r.hold(float(a["duration_s"]))
        if "broadcast" in r.capabilities:
            for member in r.cluster.live_nodes():
                c = r.cluster.client(member)
                r.cluster.call(member, "broadcasts", {}, c.broadcasts)
        if "metrics" in r.capabilities:
            r.metrics_round()
    finally:
        r.cluster.stop_intruder(node)
        r.phase("wrong-key", "end", node=node)
    r.progress(f"wrong-key node {node} stopped")
