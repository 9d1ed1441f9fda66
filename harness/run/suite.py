"""What one certification covers: the scenarios to run, the verdicts they merge into, and
the certificate that says what the result certifies.

A requirement is claimed when the manifest declares its capability (and its conflict
policy, for the policy-specific ones). ``gossipcert certify`` runs every scenario a
claimed requirement names (a requirement may name several: PARTITION-HEAL is judged
after a random split, after each of Jepsen's shapes and under a flapping link), each
under the policy that requirement needs, and merges the per-scenario verdicts into one
per requirement: a failure anywhere is a failure; else a scenario that could not judge
it (``error``: an inconclusive timing failure, reads that all failed) leaves it unjudged
whatever another scenario saw; else a pass needs a pass in every scenario the
requirement names that ran (one of them left unexercised makes the requirement so, a
pass elsewhere does not cover for it); else a pass anywhere is a pass, else it was not
exercised (``untested``). Pure functions: no cluster, no files.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import PurePath
from typing import Any

from gossipcert.harness.judging.verdict import Requirement, Verdict

__all__ = [
    "PlannedRun",
    "certificate",
    "judged_counts",
    "merge_verdicts",
    "run_summary",
    "suite_plan",
]

# Which of several verdicts on one requirement speaks for it. A fail is evidence of a
# defect wherever it was seen. An error (most often a failure made inconclusive because
# the host stalled) may hide a failure, so a pass elsewhere cannot outvote it: the
# requirement stays unjudged and the certification incomplete, never PASS.
_PRECEDENCE = {"fail": 0, "error": 1, "pass": 2, "untested": 3, "not-claimed": 4}


@dataclass(frozen=True)
class PlannedRun:
    """One scenario of a suite, and the conflict policy it must run under (None: the
    scenario's own, else the manifest's)."""

    scenario: str
    policy: str | None = None


def suite_plan(
    catalogue: Sequence[Requirement], capabilities: Iterable[str], policies: Iterable[str]
) -> list[PlannedRun]:
    """The scenarios that exercise every claimed requirement, in catalogue order (so the
    default scenario, which exercises most, runs first)."""
    caps, pols = set(capabilities), set(policies)
    order: list[str] = []
    policy_of: dict[str, str | None] = {}
    for requirement in catalogue:
        if not requirement.claimed_by(caps, pols):
            continue
        for scenario in requirement.scenarios:
            if scenario not in policy_of:
                order.append(scenario)
                policy_of[scenario] = None
            if requirement.policy is not None:
                policy_of[scenario] = requirement.policy
    return [PlannedRun(name, policy_of[name]) for name in order]


def merge_verdicts(
    catalogue: Sequence[Requirement], runs: Sequence[tuple[str, Sequence[Verdict]]]
) -> list[Verdict]:
    """One verdict per requirement from the verdicts of every scenario run (name,
    verdicts), each tagged with the scenario that judged it.

    A requirement left untested whose own scenario was not among the runs says so.
    """
    ran = {name for name, _ in runs}
    merged: list[Verdict] = []
    for requirement in catalogue:
        candidates = [
            replace(v, scenario=name)
            for name, verdicts in runs
            for v in verdicts
            if v.id == requirement.id
        ]
        if not candidates:
            continue
        # Among equals, the requirement's own scenario speaks first.
        candidates.sort(
            key=lambda v: (_PRECEDENCE.get(v.status, 9), v.scenario != requirement.scenario)
        )
        best = candidates[0]
        if best.status in ("untested", "not-claimed"):
            best = replace(best, scenario=requirement.scenario)
        if best.status == "untested" and requirement.scenario not in ran:
            best = replace(
                best,
                evidence=f"not exercised: scenario {requirement.scenario!r}, which exercises "
                f"it, was not run ({best.evidence})",
            )
        if best.status == "pass":
            best = _pass_in_every_named(requirement, candidates, best)
        judged_in = {v.scenario: v.status for v in candidates if v.status != "not-claimed"}
        if len(judged_in) > 1:
            best = replace(best, details={**best.details, "judged_in": judged_in})
        merged.append(best)
    return merged


def _pass_in_every_named(
    requirement: Requirement, candidates: Sequence[Verdict], best: Verdict
) -> Verdict:
    """A requirement that passed somewhere, checked against each scenario it names that
    ran: one where it was not exercised or not judged speaks for it, with the pass it
    would otherwise have had named. Else the pass of a named scenario that came closest
    to its bound (the figure the certificate rests on)."""
    named = [v for v in candidates if v.scenario in requirement.scenarios]
    short = [v for v in named if v.status in ("untested", "error")]
    if short:
        gap = min(short, key=lambda v: (_PRECEDENCE.get(v.status, 9),
                                        requirement.scenarios.index(v.scenario)))
        passed = sorted({v.scenario for v in named if v.status == "pass"})
        return replace(gap, evidence=f"passed in {', '.join(passed) or 'other scenarios'} but "
                       f"not in {gap.scenario!r}, which the requirement names: {gap.evidence}")
    passes = [v for v in named if v.status == "pass"]
    if not passes:
        return best

    def closeness(v: Verdict) -> float:
        if v.measured is None or not v.bound:
            return -1.0
        return v.measured / v.bound

    return max(passes, key=lambda v: (closeness(v), -requirement.scenarios.index(v.scenario)))


def judged_counts(verdicts: Iterable[Verdict]) -> dict[str, int]:
    """How many requirements one scenario run judged, by outcome (``pass``, ``fail``,
    ``error``): what a suite shows of each run, whose own verdict alone is incomplete."""
    statuses = [v.status for v in verdicts]
    return {s: statuses.count(s) for s in ("pass", "fail", "error")}


def run_summary(
    scenario: str, report: Mapping[str, Any], verdicts: Iterable[Verdict], where: PurePath
) -> dict[str, Any]:
    """One scenario run as a suite's report lists it (``runs``), from that run's own
    report and verdicts; ``where`` is its directory relative to the suite's."""
    run = report.get("run") or {}
    skipped = {"skipped": str(run["skipped"])} if run.get("skipped") else {}
    return {
        **skipped,
        "scenario": scenario,
        "verdict": report["verdict"],
        "judged": judged_counts(verdicts),
        "dir": str(where),
        "seed": report.get("seed"),
        "conflict_policy": run.get("conflict_policy"),
        "wall_time_s": float(run.get("wall_time_s") or 0.0),
    }


def certificate(
    *,
    catalogue: Sequence[Requirement],
    verdicts: Sequence[Verdict],
    capabilities: Sequence[str],
    policies: Sequence[str],
    timing_profile: Mapping[str, Any],
    scenarios: Sequence[str],
    mode: str,
    contract: str = "v1",
) -> dict[str, Any]:
    """What a report certifies: the profile shown at its top. ``timing_profile`` is
    :meth:`harness.profiles.JudgedTiming.describe` (the timing the bounds derived from).

    A declared capability is certified when it has MUST requirements and every one of
    them was exercised and passed; failed when one of them failed; otherwise not judged
    (a MUST left untested or in error), so every declared capability is in one list.
    """
    status = {v.id: v.status for v in verdicts}
    known = list(dict.fromkeys(r.capability for r in catalogue))
    certified: list[str] = []
    failed: list[str] = []
    unjudged: list[str] = []
    for capability in capabilities:
        musts = [
            r for r in catalogue
            if r.capability == capability and r.level == "MUST"
            and r.claimed_by(capabilities, policies)
        ]
        if not musts:
            continue
        if all(status.get(r.id) == "pass" for r in musts):
            certified.append(capability)
        elif any(status.get(r.id) == "fail" for r in musts):
            failed.append(capability)
        else:
            unjudged.append(capability)
    untested = [
        r.id for r in catalogue
        if r.claimed_by(capabilities, policies) and status.get(r.id) in ("untested", None)
    ]
    return {
        "contract": contract,
        "mode": mode,
        "capabilities_declared": list(capabilities),
        "capabilities_certified": certified,
        "capabilities_failed": failed,
        "capabilities_not_judged": unjudged,
        "capabilities_not_claimed": [c for c in known if c not in set(capabilities)],
        "conflict_policies": list(policies),
        "timing_profile": dict(timing_profile),
        "scenarios": list(scenarios),
        "untested": untested,
    }
