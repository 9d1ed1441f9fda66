"""TIMING-TRAFFIC: the fault planes' traffic readings against the declared probe interval.

Fast tests feed the checker synthetic histories (pass, fail, and every reason it cannot
judge); the slow test certifies a node that runs 1000 times slower than its manifest
declares (fails), as real processes behind the link plane; the reference node's pass is
checked on its full suite.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from gossipcert.harness.judging.verdict import Verdict
from gossipcert.harness.workloads.capabilities import CHECKERS
from gossipcert.harness.workloads.failure_detection import AWARENESS_MAX_MULTIPLIER
from test_checkers import CATALOGUE, Hist, formed, params

IMPLS = Path(__file__).resolve().parent / "impls"
PROBE_MS = 300  # test_checkers.TIMING
NODES = ("n1", "n2", "n3")


def verdict(history: Hist) -> Verdict:
    requirement = CATALOGUE["TIMING-TRAFFIC"]
    result: Verdict = CHECKERS[requirement.checker](history.build(), requirement, params())
    assert result.id == "TIMING-TRAFFIC"
    return result


def reading(h: Hist, at: float, sent: dict[str, int], scope: str = "link",
            plane: str = "link") -> Hist:
    """A ``traffic`` reading invoked at ``at``, completed 10 ms later."""
    nodes = {n: {"messages": m, "bytes": 100 * m, "scope": scope} for n, m in sent.items()}
    call = next(h.calls)
    args = {"round": call}
    result = {"plane": plane, "unit": "chunks", "nodes": nodes}
    h.rows.append({"time_ms": at, "type": "invoke", "op": "traffic", "call": call,
                   "args": args})
    h.rows.append({"time_ms": at + 10, "type": "ok", "op": "traffic", "call": call,
                   "args": args, "result": result})
    return h


def quiet(before: dict[str, int], after: dict[str, int], seconds: float = 10.0,
          scope: str = "link") -> Hist:
    """A formed cluster, a quiet phase from 2000 ms with readings at both ends."""
    end = 2000 + seconds * 1000
    h = formed().phase("quiet", 2000, end + 20)
    reading(h, 2000, before, scope)
    reading(h, end, after, scope)
    return h.until(end + 1000)


def test_the_floor_is_one_message_per_eight_declared_periods() -> None:
    # A 10 s quiet window: 9990 ms between the readings at least, so floor(9990 / 2400) = 4.
    assert AWARENESS_MAX_MULTIPLIER == 8
    passing = verdict(quiet({"n1": 0, "n2": 0, "n3": 0}, {"n1": 4, "n2": 200, "n3": 57}))
    assert passing.status == "pass", passing.evidence
    assert passing.measured == 0
    failing = verdict(quiet({"n1": 0, "n2": 0, "n3": 0}, {"n1": 3, "n2": 200, "n3": 57}))
    assert failing.status == "fail", failing.evidence
    assert failing.measured == 1
    assert "n1 3 chunks" in failing.evidence and "floor 4" in failing.evidence


def test_a_correct_node_passes_and_its_rates_are_reported() -> None:
    """The reference node measured here sends about 20 reads a second: every node's
    messages, bytes, rate and implied period are in the details, pass or not."""
    v = verdict(quiet({"n1": 100, "n2": 90, "n3": 80}, {"n1": 300, "n2": 280, "n3": 260}))
    assert v.status == "pass", v.evidence
    rates = {row["node"]: row for row in v.details["rates"]}
    assert set(rates) == set(NODES)
    n1 = rates["n1"]
    assert n1["messages"] == 200 and n1["bytes"] == 20000
    assert n1["declared_probe_interval_ms"] == PROBE_MS and n1["floor_messages"] == 4
    assert n1["messages_per_s"] == pytest.approx(20.0, rel=0.01)
    assert n1["implied_period_ms"] == pytest.approx(50.0, rel=0.01)
    assert n1["status"] == "pass"
    assert "slowest n3 180 chunks" in v.evidence


def test_a_node_slower_than_it_declares_is_flagged_with_evidence() -> None:
    v = verdict(quiet({"n1": 10, "n2": 10, "n3": 10}, {"n1": 11, "n2": 10, "n3": 500}))
    assert v.status == "fail"
    assert v.measured == 2
    flagged = {row["node"]: row for row in v.details["flagged"]}
    assert set(flagged) == {"n1", "n2"}
    assert flagged["n2"]["messages"] == 0 and flagged["n2"]["implied_period_ms"] is None
    assert flagged["n1"]["implied_period_ms"] == pytest.approx(10010, abs=1)
    assert "n2 0 chunks" in v.evidence and "no message" in v.evidence


def test_partial_counts_never_fail_a_node() -> None:
    """Packet counts by gossip port miss the TCP connections a node opens itself: a node
    below the floor on them is undetermined, not failed."""
    low = {"n1": 0, "n2": 0, "n3": 0}
    v = verdict(quiet(low, {"n1": 1, "n2": 1, "n3": 1}, scope="gossip-port"))
    assert v.status == "untested" and "partial counts" in v.evidence
    assert v.details["undetermined"] == list(NODES)
    fine = verdict(quiet(low, {"n1": 50, "n2": 50, "n3": 50}, scope="gossip-port"))
    assert fine.status == "pass"
    full = verdict(quiet(low, {"n1": 1, "n2": 1, "n3": 1}, scope="netns"))
    assert full.status == "fail" and full.measured == 3


def test_untested_without_readings_or_a_window_long_enough() -> None:
    none = verdict(formed().phase("quiet", 2000, 12000).until(13000))
    assert none.status == "untested" and "no traffic reading" in none.evidence
    short = verdict(quiet({"n1": 0, "n2": 0, "n3": 0}, {"n1": 0, "n2": 0, "n3": 0},
                          seconds=2.0))
    assert short.status == "untested" and "shorter than" in short.evidence
    assert short.details["rates"][0]["status"] == "too short to judge"
    one = formed().phase("quiet", 2000, 12000)
    reading(one, 2000, {"n1": 0, "n2": 0, "n3": 0})
    assert verdict(one.until(13000)).status == "untested"


def test_readings_outside_a_quiet_phase_or_across_a_fault_are_not_paired() -> None:
    outside = formed()
    reading(outside, 2000, {"n1": 0, "n2": 0, "n3": 0})
    reading(outside, 12000, {"n1": 0, "n2": 0, "n3": 0})
    assert verdict(outside.until(13000)).status == "untested"
    paused = quiet({"n1": 0, "n2": 0, "n3": 0}, {"n1": 0, "n2": 0, "n3": 0})
    paused.fault("pause", 5000, node="n1", signal="STOP")
    v = verdict(paused)
    assert v.status == "untested" and "pause" in v.evidence


def test_a_node_killed_in_the_window_or_restarted_counters_are_left_out() -> None:
    h = quiet({"n1": 0, "n2": 0, "n3": 50}, {"n1": 100, "n2": 100, "n3": 2})
    v = verdict(h)  # n3's counters went down: a new namespace, no window for it
    assert v.status == "pass"
    assert {row["node"] for row in v.details["rates"]} == {"n1", "n2"}


def test_a_node_is_held_to_the_period_it_declared_not_the_profiles_ceiling() -> None:
    """A manifest declaring a slower probe than the profile is judged at the ceiling for
    bounds (the meta's timing), but it runs as declared: the floor uses its own period."""
    slow = quiet({"n1": 0, "n2": 0, "n3": 0}, {"n1": 3, "n2": 3, "n3": 3}, seconds=30.0)
    assert verdict(slow).status == "fail"        # held to 300 ms: floor 12
    meta = slow.rows[0]["args"]
    meta["timing_profile"] = {"name": "lan", "declared": {"probe_interval_ms": 2000}}
    v = verdict(slow)                           # its own 2 s: floor(29990 / 16000) = 1
    assert v.status == "pass", v.evidence
    assert v.details["declared_probe_interval_ms"] == 2000
    assert v.details["probe_interval_source"] == "declared"


def test_not_claimed_without_failure_detection() -> None:
    h = Hist(caps=["membership"]).start_all().all_alive(1500).phase("quiet", 2000, 12020)
    reading(h, 2000, {"n1": 0, "n2": 0, "n3": 0})
    reading(h, 12000, {"n1": 0, "n2": 0, "n3": 0})
    assert verdict(h.until(13000)).status == "not-claimed"


# ---------------------------------------------------------------- real processes (slow)


def certify(impl: str, report_dir: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    proc = subprocess.run(
        [sys.executable, "-m", "gossipcert.harness", "certify", "--impl", impl, "--nodes", "5",
         "--seed", "3", "--quick", "--report-dir", str(report_dir), *extra],
        capture_output=True, text=True, timeout=900,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    report = json.loads((report_dir / "report.json").read_text())
    return proc.returncode, report, proc.stdout + proc.stderr


@pytest.mark.slow
def test_traffic_fails_a_node_slower_than_it_declares(tmp_path: Path) -> None:
    """A 16 s quiet phase: the span between its two readings is at least 14.4 s, so the
    floor is floor(T / 2.4 s) = 6 messages a node; the slowed nodes (probe every 300 s,
    gossip every 100 s, none probing the others) send next to none. The reference node's
    pass, with every node at ten times its floor or more, is checked on its full suite
    (``test_certify_e2e.check_full_suite``, the compliance run)."""
    manifest = str(IMPLS / "declares_fast_timing" / "manifest.yaml")
    code, report, output = certify(manifest, tmp_path / "slow", "--quiet-s", "16")
    found = {r["id"]: r for r in report["requirements"]}
    traffic = found["TIMING-TRAFFIC"]
    assert traffic["status"] == "fail", (traffic, output[-3000:])
    assert traffic["measured"] >= 1
    assert code == 1
    for row in traffic["evidence"]["details"]["flagged"]:
        assert row["messages"] < row["floor_messages"] == 6
