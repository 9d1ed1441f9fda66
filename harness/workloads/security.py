"""Security: a node holding the wrong gossip key must not get into the cluster.

It also owns the operation that starts such a node (an intruder with a key of its own).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gossipcert.harness.judging.checker import (
    Checker,
    JudgingContext,
    capability_checker,
    make_verdict,
)
from gossipcert.harness.judging.index import HistoryIndex
from gossipcert.harness.judging.models import canon
from gossipcert.harness.judging.verdict import Requirement, Verdict
from gossipcert.harness.workloads.operations import Op

if TYPE_CHECKING:
    from gossipcert.harness.workloads.interpreter import Execution


__all__ = [
    "OPERATIONS",
    "CHECKERS",
    "Intruder",
    "check_wrong_key_rejected",
]


# ---- operations -----------------------------------------------------------------------


@dataclass(frozen=True)
class Intruder(Op):
    kind = "intruder"
    needs = "encryption"
    summary = ("SEC-WRONG-KEY: an extra node with a gossip key of its own, seeded with a "
               "member, tries a write and a broadcast while members are read for ms; then "
               "it is stopped")
    node: str
    seed: str
    ms: int
    broadcast_id: str

    def run(self, x: Execution) -> None:
        if not x.driver.gossip_key_set:
            x.progress("wrong-key node: skipped (the run has no gossip key: the scenario "
                       "needs encryption, the manifest capability encryption and key_args)")
            return
        live = x.driver.live_nodes()
        seed = self.seed if self.seed in live else (live[0] if live else None)
        if seed is None:
            x.progress("wrong-key node: skipped (no member is up to seed it)")
            return
        x.driver.start_intruder(self.node, seed)
        x.driver.history.append("phase", "wrong-key",
                                args={"edge": "start", "node": self.node, "seed": seed})
        x.progress(f"wrong-key node {self.node} started, seeded with {seed}; holding "
                   f"{self.ms / 1000:.1f} s")
        try:
            if "kv" in x.capabilities:
                x.driver.call(self.node, "put", {"key": f"key-wrong-key-{self.node}",
                                                 "value": f"{self.node}/intruder"})
            if "broadcast" in x.capabilities:
                x.driver.call(self.node, "broadcast", {"id": x.broadcast_id(self.broadcast_id),
                                                       "payload": {"hello": self.node}})
            x.hold(self.ms / 1000)
            x.read_round("broadcasts")
            x.read_round("metrics")
        finally:
            x.driver.stop_intruder(self.node)
            x.driver.history.append("phase", "wrong-key", args={"edge": "end", "node": self.node})
        x.progress(f"wrong-key node {self.node} stopped")


# ---- checkers --------------------------------------------------------------------------



# What exercises encryption: it is judged from the members' views (see capability_checker).
checker = capability_checker(reads=("members",))


@checker
def check_wrong_key_rejected(
    judging: JudgingContext, requirement: Requirement, bound: float
) -> Verdict:
    """SEC-WRONG-KEY: no member holding the right key ever lists an intruder (a node
    started with a wrong key: ``start`` args ``key: wrong``) as alive or suspect, no
    broadcast from an intruder reaches one, and no member's state ever shows the value an
    intruder wrote (state injected with the wrong key)."""
    index = judging.index
    intruders = index.intruders
    if not intruders:
        why = "no node was started with a wrong key"
        return make_verdict(requirement, "untested", None, bound, why)
    honest = [n for n in index.nodes if n not in intruders]
    incidents: list[dict[str, Any]] = []
    for observer in honest:
        for intruder in sorted(intruders):
            line = index.timeline(observer, intruder)
            for t, status in zip(line.times, line.statuses, strict=True):
                if status in ("alive", "suspect"):
                    incidents.append(
                        {"observer": observer, "intruder": intruder, "status": status, "at_ms": t}
                    )
                    break
    for op in index.intruder_ops.get("broadcast", []):
        if op.node in intruders and op.args.get("id") is not None:
            reached = set(index.deliveries.get(str(op.args["id"]), {})) & set(honest)
            for member in sorted(reached):
                incidents.append(
                    {"observer": member, "intruder": op.node, "broadcast": op.args["id"]}
                )
    incidents += _injected_writes(index, intruders, honest)
    details = {"intruders": sorted(intruders), "admitted": incidents[:10]}
    if len(incidents) > bound:
        first = incidents[0]
        if "broadcast" in first:
            what = f"received broadcast {first['broadcast']!r} from"
        elif "key" in first:
            what = f"holds key {first['key']!r} as written by"
        else:
            what = f"listed as {first['status']}"
        text = (
            f"{len(incidents)} admission(s) of a wrong-key node: {first['observer']} "
            f"{what} {first['intruder']}"
        )
        return make_verdict(requirement, "fail", len(incidents), bound, text, details)
    text = f"{len(honest)} members never admitted {', '.join(sorted(intruders))}"
    return make_verdict(requirement, "pass", 0, bound, text, details)


def _injected_writes(
    index: HistoryIndex, intruders: frozenset[str], honest: list[str]
) -> list[dict[str, Any]]:
    """Each member whose kv read (the whole state, or one key) returned a value an
    intruder put, read after that put began: one incident per member and write."""
    found: list[dict[str, Any]] = []
    members = set(honest)
    for put in index.intruder_ops.get("put", []):
        key, value = put.args.get("key"), canon(put.args.get("value"))
        if put.node not in intruders or key is None:
            continue
        for op in [*index.ops.get("kv", []), *index.ops.get("get", [])]:
            if (op.outcome != "ok" or op.node not in members or op.completed < put.invoked
                    or not isinstance(op.result, Mapping)):
                continue
            if op.op == "kv":
                entry = (op.result.get("entries") or {}).get(str(key))
                values = entry.get("values") if isinstance(entry, Mapping) else None
            else:
                values = op.result.get("values") if op.args.get("key") == key else None
            if isinstance(values, list) and value in {canon(v) for v in values}:
                found.append({"observer": op.node, "intruder": put.node, "key": key,
                              "at_ms": op.completed})
                members.discard(str(op.node))
    return found


# The operations this capability adds to the vocabulary.
OPERATIONS: tuple[type[Op], ...] = (Intruder,)


# The checkers of this capability's requirements, by the name the catalogue gives.
CHECKERS: dict[str, Checker] = {
    "check_wrong_key_rejected": check_wrong_key_rejected,
}
