"""Security: a node holding the wrong gossip key must not get into the cluster.

It also owns the operation that starts such a node (an intruder with a key of its own).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gossipcert.harness.judging.checker import (
    Checker,
    JudgingContext,
    capability_checker,
    make_verdict,
)
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
    started with a wrong key: ``start`` args ``key: wrong``) as alive or suspect, and no
    broadcast from an intruder reaches one."""
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
    details = {"intruders": sorted(intruders), "admitted": incidents[:10]}
    if len(incidents) > bound:
        first = incidents[0]
        what = (
            f"received broadcast {first['broadcast']!r} from"
            if "broadcast" in first
            else f"listed as {first['status']}"
        )
        text = (
            f"{len(incidents)} admission(s) of a wrong-key node: {first['observer']} "
            f"{what} {first['intruder']}"
        )
        return make_verdict(requirement, "fail", len(incidents), bound, text, details)
    text = f"{len(honest)} members never admitted {', '.join(sorted(intruders))}"
    return make_verdict(requirement, "pass", 0, bound, text, details)


# The operations this capability adds to the vocabulary.
OPERATIONS: tuple[type[Op], ...] = (Intruder,)


# The checkers of this capability's requirements, by the name the catalogue gives.
CHECKERS: dict[str, Checker] = {
    "check_wrong_key_rejected": check_wrong_key_rejected,
}
