"""Timing profiles: declared timing slower than the profile is judged at its ceiling."""

from __future__ import annotations

import pytest
from gossipcert.harness.errors import GossipcertError
from gossipcert.harness.judging.bounds import derived_parameters, evaluate
from gossipcert.harness.judging.verdict import load_catalogue
from gossipcert.harness.profiles import judged_timing, profiles
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
