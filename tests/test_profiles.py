"""Timing profiles: declared timing slower than the profile is judged at its ceiling,
faster than its floor at the floor."""

from __future__ import annotations

import pytest
from gossipcert.harness.errors import GossipcertError
from gossipcert.harness.judging.bounds import derived_parameters, evaluate
from gossipcert.harness.judging.verdict import load_catalogue
from gossipcert.harness.profiles import floors, judged_timing, profiles
from gossipcert.harness.workloads.faults import Latency
from gossipcert.harness.workloads.planner import plan
from gossipcert.harness.workloads.scenario import load_scenario
from test_checkers import TIMING

CATALOGUE = {r.id: r for r in load_catalogue()}
REFERENCE = {k: float(v) for k, v in TIMING.items()}  # the reference manifest's timing


def bound(requirement: str, timing: dict[str, float], n: int = 5) -> float:
    r = CATALOGUE[requirement]
    return evaluate(r.bound, {**derived_parameters(timing, n), **r.constants})


def test_profiles_are_memberlists_defaults() -> None:
    known = profiles()
    assert known["lan"]["probe_interval_ms"] == 1000 and known["lan"]["probe_timeout_ms"] == 500
    assert known["lan"]["push_pull_interval_ms"] == 30000
    assert known["local"]["probe_timeout_ms"] == 200 and known["local"]["suspicion_mult"] == 3
    assert known["local"]["push_pull_interval_ms"] == 15000


def test_timing_faster_than_the_profile_is_judged_as_declared() -> None:
    judged = judged_timing(REFERENCE, "lan")
    assert judged.timing == {k: float(v) for k, v in REFERENCE.items()}
    assert judged.capped == {} and judged.defaulted == ()


@pytest.mark.parametrize("profile", ["lan", "local"])
def test_slower_declared_timing_gets_no_looser_bound(profile: str) -> None:
    """Declaring slow timing (or leaving parameters out) cannot loosen any bound past the
    profile's: every timed bound is at most what the profile itself gives."""
    ceiling = profiles()[profile]
    slow = {
        "probe_interval_ms": 20_000,
        "probe_timeout_ms": 9_000,
        "suspicion_mult": 12,
        "suspicion_max_timeout_mult": 20,
        "gossip_interval_ms": 5_000,
        "fanout": ceiling["fanout"],
        "retransmit_mult": 9,
    }  # push_pull_interval_ms left out
    judged = judged_timing(slow, profile)
    assert set(judged.capped) == set(slow) - {"fanout"}
    assert judged.defaulted == ("indirect_checks", "push_pull_interval_ms")
    assert "judged at its ceiling" in judged.note()
    for r in CATALOGUE.values():
        if r.unit != "ms":
            continue
        assert bound(r.id, judged.timing) == pytest.approx(bound(r.id, ceiling)), r.id
        assert bound(r.id, judged.timing) < bound(r.id, slow), r.id
    # KV-CONVERGENCE no longer stretches with an omitted push-pull interval beyond the
    # profile's own figure.
    assert bound("KV-CONVERGENCE", judged.timing) == bound("KV-CONVERGENCE", ceiling)


def test_an_unknown_profile_is_bad_input() -> None:
    with pytest.raises(GossipcertError, match="unknown timing profile 'wan'"):
        judged_timing(REFERENCE, "wan")


def test_timing_faster_than_its_floor_is_judged_at_the_floor() -> None:
    """A manifest declaring a 1 ms probe timeout is judged at the 10 ms floor, not at
    1 ms: the latency storm is sized from the judged value (a 0 ms storm let
    FD-NO-FP-LATENCY pass without any latency) and so is the stall threshold."""
    fast = {**REFERENCE, "probe_timeout_ms": 1, "probe_interval_ms": 5, "suspicion_mult": 0.5}
    judged = judged_timing(fast, "lan")
    least = floors()
    assert least["probe_timeout_ms"] == 10
    assert judged.timing["probe_timeout_ms"] == 10
    assert judged.timing["probe_interval_ms"] == least["probe_interval_ms"]
    assert judged.timing["suspicion_mult"] == least["suspicion_mult"] == 1
    assert judged.floored["probe_timeout_ms"] == (1.0, 10.0)
    assert judged.describe()["floored"]["probe_timeout_ms"] == {"declared": 1.0, "floor": 10.0}
    assert "judged at the floor (probe_interval_ms 5 -> 10; probe_timeout_ms 1 -> 10;" \
        in judged.note()
    # Every floor lies below every shipped profile: no real configuration is raised.
    for timing in profiles().values():
        assert all(timing[name] >= floor for name, floor in least.items())

    def storm(timing: dict[str, float]) -> Latency:
        steps = load_scenario("latency-storm").steps
        ops = plan(steps, ["n1", "n2", "n3"], 1, derived_parameters(timing, 3))
        return next(op for op in ops if isinstance(op, Latency))

    assert storm(fast).latency_ms == 0  # the declared 1 ms: no storm at all
    judged_storm = storm(judged.timing)
    assert (judged_storm.latency_ms, judged_storm.jitter_ms) == (6, 1)


def test_the_markdown_report_lists_floored_timing() -> None:
    from gossipcert.reports.markdown import _profile_lines

    judged = judged_timing({**REFERENCE, "probe_timeout_ms": 1}, "lan")
    lines = dict(_profile_lines(judged.describe()))
    assert lines["raised to the floor"] == "probe_timeout_ms declared 1, judged at 10"
