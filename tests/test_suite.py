"""The suite: which scenarios a manifest's claims need, how their verdicts merge, and what
the certificate says."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from gossipcert.harness.judging.verdict import (
    CatalogueError,
    Requirement,
    Verdict,
    load_catalogue,
    overall_verdict,
)
from gossipcert.harness.profiles import judged_timing
from gossipcert.harness.run.suite import PlannedRun, certificate, merge_verdicts, suite_plan

CATALOGUE = load_catalogue()
EVERYTHING = [
    "membership", "failure-detection", "broadcast", "kv", "crdt", "encryption", "leave",
]


def v(rid: str, status: str) -> Verdict:
    req = next(r for r in CATALOGUE if r.id == rid)
    return Verdict(rid, req.level, req.title, status, None, None, req.unit, f"{rid} {status}")


def test_the_suite_runs_every_scenario_a_claim_names_once_default_first() -> None:
    plan = suite_plan(CATALOGUE, EVERYTHING, ["lww", "mv"])
    names = [p.scenario for p in plan]
    assert names[0] == "default" and len(names) == len(set(names))
    assert set(names) == {name for r in CATALOGUE for name in r.scenarios}
    assert PlannedRun("default", "lww") in plan and PlannedRun("mv", "mv") in plan


def test_the_partition_shapes_run_in_every_certification_of_what_they_test() -> None:
    """Hole 11: partitions, flapping and broadcasts under partitions ran only under
    ``--scenario``, so a PASS never meant surviving a bridge or a one-way cut."""
    membership = {p.scenario for p in suite_plan(CATALOGUE, ["membership"], ["lww"])}
    assert {"default", "partitions", "flapping"} <= membership
    assert "broadcast-partitions" not in membership
    kv = {p.scenario for p in suite_plan(CATALOGUE, ["kv"], ["lww"])}
    assert "partitions" in kv
    # A Maelstrom broadcast node claims broadcast alone: the default run and the
    # broadcasts sent while partitions hold, nothing else.
    assert suite_plan(CATALOGUE, ["broadcast", "metrics"], ["lww"]) == [
        PlannedRun("default"), PlannedRun("broadcast-partitions")]


def test_the_catalogue_loader_takes_several_scenarios_and_refuses_bad_ones(
        tmp_path: Path) -> None:
    base = {"id": "X-1", "level": "MUST", "title": "t", "capability": "kv", "measures": "m",
            "unit": "count", "bound": "0", "derivation": "d", "checker": "check_kv_lww"}

    def load(**fields: Any) -> list[Requirement]:
        path = tmp_path / "catalogue.yaml"
        path.write_text(yaml.safe_dump({"requirements": [{**base, **fields}]}))
        return load_catalogue(path)

    several = load(scenarios=["default", "partitions"])[0]
    assert several.scenarios == ("default", "partitions") and several.scenario == "default"
    assert load(scenario="mv")[0].scenarios == ("mv",)
    assert load()[0].scenarios == ("default",)
    for bad in ({"scenarios": []}, {"scenarios": "default"}, {"scenarios": ["a", "a"]},
                {"scenarios": ["default"], "scenario": "default"}, {"scenarios": [""]}):
        with pytest.raises(CatalogueError):
            load(**bad)


def test_the_suite_leaves_out_what_is_not_claimed() -> None:
    plan = suite_plan(CATALOGUE, ["membership", "failure-detection"], ["lww"])
    names = {p.scenario for p in plan}
    assert "crdt" not in names and "mv" not in names and "security" not in names
    assert {"default", "crash-restart", "paused-node"} <= names
    # A graceful leave is a capability of its own: without it, no churn run and no leave.
    assert "churn" not in names
    assert "churn" in {p.scenario for p in suite_plan(CATALOGUE, ["membership", "leave"],
                                                      ["lww"])}
    only_mv = suite_plan(CATALOGUE, ["kv"], ["mv"])
    assert PlannedRun("mv", "mv") in only_mv
    assert all(p.policy != "lww" for p in only_mv)  # KV-LWW is not claimed
    assert suite_plan(CATALOGUE, ["events", "metrics"], ["lww"]) == []


def test_merge_a_failure_anywhere_fails_a_pass_beats_untested() -> None:
    runs = [
        ("default", [v("MEM-JOIN", "pass"), v("MEM-LEAVE", "untested"), v("KV-MV", "untested")]),
        ("churn", [v("MEM-JOIN", "fail"), v("MEM-LEAVE", "pass"), v("KV-MV", "untested")]),
    ]
    merged = {x.id: x for x in merge_verdicts(CATALOGUE, runs)}
    assert merged["MEM-JOIN"].status == "fail" and merged["MEM-JOIN"].scenario == "churn"
    assert merged["MEM-LEAVE"].status == "pass" and merged["MEM-LEAVE"].scenario == "churn"
    # Its own scenario (mv) never ran: the evidence says so, and it stays untested.
    assert merged["KV-MV"].status == "untested" and merged["KV-MV"].scenario == "mv"
    assert "scenario 'mv'" in merged["KV-MV"].evidence
    assert overall_verdict(merged.values()) == "fail"


def test_merge_error_beats_pass_and_untested_and_fail_beats_error() -> None:
    """An inconclusive failure (error) in one scenario is not outvoted by a pass in
    another: it may be a FAIL the host's stall hid, so the requirement stays unjudged
    (the run incomplete). A fail anywhere still beats everything."""
    runs = [("default", [v("KV-LWW", "error")]), ("churn", [v("KV-LWW", "untested")])]
    assert merge_verdicts(CATALOGUE, runs)[0].status == "error"
    runs.append(("crdt", [v("KV-LWW", "pass")]))
    merged = merge_verdicts(CATALOGUE, runs)[0]
    assert merged.status == "error" and merged.scenario == "default"
    assert overall_verdict([merged]) == "incomplete"
    runs.append(("mv", [v("KV-LWW", "fail")]))
    merged = merge_verdicts(CATALOGUE, runs)[0]
    assert merged.status == "fail" and merged.scenario == "mv"


def timed(rid: str, status: str, measured: float, bound: float = 1000.0) -> Verdict:
    return replace(v(rid, status), measured=measured, bound=bound)


def test_merge_a_pass_needs_a_pass_in_every_scenario_the_requirement_names() -> None:
    """PARTITION-HEAL names default, partitions and flapping: passing after a random split
    does not certify the bridge or the ring when the partitions run never exercised it."""
    runs = [("default", [timed("PARTITION-HEAL", "pass", 300)]),
            ("churn", [timed("PARTITION-HEAL", "pass", 100)]),
            ("partitions", [v("PARTITION-HEAL", "untested")]),
            ("flapping", [timed("PARTITION-HEAL", "pass", 200)])]
    merged = merge_verdicts(CATALOGUE, runs)[0]
    assert merged.status == "untested" and merged.scenario == "partitions"
    assert "passed in default, flapping but not in 'partitions'" in merged.evidence
    assert merged.details["judged_in"]["partitions"] == "untested"
    assert overall_verdict([merged]) == "incomplete"
    # An error in a named scenario speaks before an untested one.
    runs[3] = ("flapping", [v("PARTITION-HEAL", "error")])
    assert merge_verdicts(CATALOGUE, runs)[0].status == "error"
    # Passed in each: the pass closest to its bound is the one shown.
    runs[2] = ("partitions", [timed("PARTITION-HEAL", "pass", 900)])
    runs[3] = ("flapping", [timed("PARTITION-HEAL", "pass", 200)])
    merged = merge_verdicts(CATALOGUE, runs)[0]
    assert merged.status == "pass" and merged.scenario == "partitions"
    assert merged.measured == 900
    assert merged.details["judged_in"] == {
        "default": "pass", "churn": "pass", "partitions": "pass", "flapping": "pass"}
    # A failure anywhere still fails, named or not.
    runs[1] = ("churn", [timed("PARTITION-HEAL", "fail", 5000)])
    assert merge_verdicts(CATALOGUE, runs)[0].status == "fail"


def test_certificate_names_what_was_certified_and_what_was_not() -> None:
    verdicts = [v(r.id, "pass") for r in CATALOGUE if r.capability != "kv"]
    verdicts += [v(r.id, "untested") for r in CATALOGUE if r.capability == "kv"]
    cert = certificate(
        catalogue=CATALOGUE,
        verdicts=verdicts,
        capabilities=["membership", "failure-detection", "broadcast", "kv", "events"],
        policies=["lww"],
        timing_profile=judged_timing({"probe_interval_ms": 5000}, "lan").describe(),
        scenarios=["default"],
        mode="quick",
    )
    assert cert["capabilities_certified"] == ["membership", "failure-detection", "broadcast"]
    assert cert["capabilities_not_claimed"] == ["leave", "crdt", "encryption"]
    assert "KV-LWW" in cert["untested"] and "KV-MV" not in cert["untested"]  # mv not claimed
    profile = cert["timing_profile"]
    assert profile["name"] == "lan" and profile["timing"]["probe_interval_ms"] == 1000
    assert profile["capped"] == {"probe_interval_ms": {"declared": 5000, "ceiling": 1000}}
    assert "push_pull_interval_ms" in profile["defaulted"]
    assert cert["mode"] == "quick" and cert["contract"] == "v1"
    # Every declared capability with a MUST is in one list: certified, failed or not judged.
    assert cert["capabilities_failed"] == [] and cert["capabilities_not_judged"] == ["kv"]
    verdicts = [v(r.id, "fail" if r.id == "FD-DETECT" else "pass") for r in CATALOGUE
                if r.capability != "kv"]
    cert = certificate(
        catalogue=CATALOGUE, verdicts=verdicts,
        capabilities=["membership", "failure-detection", "broadcast"], policies=["lww"],
        timing_profile=judged_timing({}, "lan").describe(), scenarios=["default"],
        mode="suite",
    )
    assert cert["capabilities_certified"] == ["membership", "broadcast"]
    assert cert["capabilities_failed"] == ["failure-detection"]
    assert cert["capabilities_not_judged"] == []
