"""The suite: which scenarios a manifest's claims need, how their verdicts merge, and what
the certificate says."""

from __future__ import annotations

from gossipcert.harness.judging.verdict import Verdict, load_catalogue, overall_verdict
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
    assert set(names) == {r.scenario for r in CATALOGUE}
    assert PlannedRun("default", "lww") in plan and PlannedRun("mv", "mv") in plan


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
