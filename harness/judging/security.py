"""Security: a node holding the wrong gossip key must not get into the cluster."""

from __future__ import annotations

from typing import Any

from gossipcert.harness.judging.checker import JudgingContext, checker, make_verdict
from gossipcert.harness.judging.verdict import Requirement, Verdict

__all__ = ["check_wrong_key_rejected"]


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
