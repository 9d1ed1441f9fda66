"""The harness watches its own host: a stall of the harness, or a saturation of the host
the nodes did not cause, that accounts for a timing failure inside its window makes it
inconclusive; a stall elsewhere, a node's own spinning, or a failure about a count
never is."""

from __future__ import annotations

import re
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from gossipcert.harness.drivers.hostlag import LagMonitor
from gossipcert.harness.history import History
from gossipcert.harness.judging.verdict import Verdict
from gossipcert.harness.workloads.failure_detection import (
    check_failure_detection,
    check_no_false_positive,
)
from test_checkers import Hist, check, final, formed, killed_n3, lww, writes
from test_checkers_catalogue import killed, verdict_of


def test_a_stalled_harness_is_recorded(tmp_path: Path) -> None:
    """Hold the interpreter for 0.6 s at a time (as a loaded host would starve the
    harness): the watcher wakes up late and records it."""
    history = History(tmp_path / "history.jsonl")
    old = sys.getswitchinterval()
    sys.setswitchinterval(0.6)
    try:
        with LagMonitor(history, threshold_ms=150) as monitor:
            time.sleep(0.05)  # let the watcher start its first sleep
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                pass
    finally:
        sys.setswitchinterval(old)
        history.close()
    stalls = [e for e in history.entries() if e.op == "host-lag" and e.args["edge"] == "start"]
    assert monitor.episodes == len(stalls) >= 1
    assert all(e.args["lag_ms"] > 150 for e in stalls)
    assert monitor.worst_ms > 150


def test_an_unloaded_harness_records_nothing(tmp_path: Path) -> None:
    history = History(tmp_path / "history.jsonl")
    with LagMonitor(history, threshold_ms=5_000) as monitor:
        time.sleep(0.3)
    history.close()
    assert monitor.episodes == 0 and history.entries() == []


def lagged(h: Hist, at: float = 12_000, lag_ms: float = 900.0) -> Hist:
    h.rows.append({"time_ms": at, "type": "phase", "op": "host-lag",
                   "args": {"edge": "start", "lag_ms": lag_ms, "threshold_ms": 150}})
    h.rows.append({"time_ms": at + lag_ms, "type": "phase", "op": "host-lag",
                   "args": {"edge": "end", "lag_ms": lag_ms, "threshold_ms": 150}})
    return h


def fd_detect(h: Hist) -> Verdict:
    return check(check_failure_detection, "FD-DETECT", h.build())


def test_timing_failures_the_harness_stall_accounts_for_are_inconclusive() -> None:
    """n3 is killed at 10000 and n2 marks it dead at 22500: 12500 ms, 650 over the
    11850 ms bound. A 900 ms stall of the harness inside that window accounts for it."""
    late = killed_n3(13000, 22500)
    assert fd_detect(late).status == "fail"
    verdict = fd_detect(lagged(late))
    assert verdict.status == "error"
    assert verdict.evidence.startswith("inconclusive: the host, not the implementation")
    assert "stall of the harness of 900 ms" in verdict.evidence
    assert verdict.details["host_episodes"][0]["kind"] == "host-lag"
    # A pass stays a pass, and what a node stores does not depend on the harness's pace.
    assert fd_detect(lagged(killed_n3(13000, 14000))).status == "pass"
    wrong = lagged(final(writes(formed()), {"n1": ["a"], "n2": ["a"], "n3": ["a"]}))
    assert lww(wrong).status == "fail"


def test_a_stall_outside_the_failing_window_does_not_excuse() -> None:
    """The same late detection with the stall after it (at 30000): the stall could not
    have made it late, so the failure stands (it used to be inconclusive: any stall of
    the run excused every timing failure)."""
    verdict = fd_detect(lagged(killed_n3(13000, 22500), at=30_000))
    assert verdict.status == "fail", verdict.evidence
    assert "host_episodes" not in verdict.details


def test_a_stall_too_short_for_the_lateness_does_not_excuse() -> None:
    """Dead at 25000: 3150 ms over the bound, of which a 900 ms stall inside the window
    accounts for 900 ms only; the rest is the implementation's."""
    verdict = fd_detect(lagged(killed_n3(13000, 25_000)))
    assert verdict.status == "fail", verdict.evidence
    assert "1 of 1 failing observation(s) are late beyond" in verdict.evidence
    # Stalls adding up inside the window count together (overlaps once).
    stalled = lagged(lagged(lagged(killed_n3(13000, 25_000)), at=14_000, lag_ms=2500),
                     at=14_500, lag_ms=2500)  # 900 + 3000 ms covered, 3150 over
    assert fd_detect(stalled).status == "error"


def test_count_failures_are_never_inconclusive() -> None:
    """A live member reported suspect in a quiet window is a false positive whatever
    the host did (it used to be excused: every failure-detection requirement was)."""
    h = formed().phase("quiet", 5000, 10000)
    h.member("n2", "n1", "suspect", 7000).member("n2", "n1", "alive", 7400)
    verdict = check(check_no_false_positive, "FD-NO-FALSE-POSITIVE",
                    saturated(lagged(h.until(12000), at=6500)).build())
    assert verdict.status == "fail", verdict.evidence
    resurrected = killed([("dead", 6000), ("alive", 7000), ("dead", 9000)])
    stays = verdict_of("FD-DEAD-STAYS-DEAD", lagged(resurrected, at=6500).build())
    assert stays.status == "fail", stays.evidence


def saturated(h: Hist, by_nodes: bool = False) -> Hist:
    share = 0.9 if by_nodes else 0.1
    h.rows.append({"time_ms": 12_000, "type": "phase", "op": "host-saturated",
                   "args": {"edge": "start", "busy": 0.99, "cpus": 2, "nodes_share": share,
                            "by_nodes": by_nodes}})
    h.rows.append({"time_ms": 16_000, "type": "phase", "op": "host-saturated",
                   "args": {"edge": "end", "busy": 0.5, "cpus": 2, "nodes_cpu_s": 7.5,
                            "nodes_share": share, "by_nodes": by_nodes}})
    return h


def test_timing_failures_on_a_host_others_saturated_are_inconclusive() -> None:
    late = killed_n3(13000, 22500)
    verdict = fd_detect(saturated(late))
    assert verdict.status == "error"
    assert verdict.evidence.startswith("inconclusive: the host, not the implementation")
    assert re.search(r"2 CPU\(s\) saturated from [\d.]+ s to [\d.]+ s, the nodes under "
                     r"test using 10% of it", verdict.evidence), verdict.evidence
    wrong = saturated(final(writes(formed()), {"n1": ["a"], "n2": ["a"], "n3": ["a"]}))
    assert lww(wrong).status == "fail"


def test_a_saturation_the_nodes_caused_excuses_none_of_their_failures() -> None:
    """The nodes used 90% of the busy CPU while the host was saturated (a node that
    spins): their late detection stands, and the evidence says why."""
    verdict = fd_detect(saturated(killed_n3(13000, 22500), by_nodes=True))
    assert verdict.status == "fail", verdict.evidence
    assert "saturated by the nodes under test themselves" in verdict.evidence
    assert verdict.details["host_episodes"][0]["by_nodes"] is True


def test_a_failure_about_what_was_reported_is_not_excused() -> None:
    """A checker that says its failure is not about timing (windows ``()``) keeps its
    FAIL through any stall; one that says nothing falls back to any stall of the run."""
    from gossipcert.harness.judging.checker import _host_excuse
    from gossipcert.harness.judging.index import HistoryIndex

    index = HistoryIndex.build(lagged(killed_n3(13000, 22500)).build())
    failed = replace(fd_detect(killed_n3(13000, 22500)), windows=())
    assert _host_excuse(index, failed, 11850).status == "fail"
    assert _host_excuse(index, replace(failed, windows=None), 11850).status == "error"


@pytest.mark.slow
def test_a_saturated_host_is_recorded_with_who_used_the_cpu(tmp_path: Path) -> None:
    """Two processes spinning on a two-core host (one per core) saturate it: the monitor
    records a host-saturated phase and counts their CPU as the run's nodes (children of
    the harness); an idle host records nothing."""
    import os
    import subprocess

    from gossipcert.harness.drivers.hostload import SATURATED_SAMPLES, HostLoadMonitor

    history = History(tmp_path / "history.jsonl")
    spin = [sys.executable, "-c",
            "import time\nt = time.monotonic()\nwhile time.monotonic() - t < 6: pass"]
    with HostLoadMonitor(history, sample_s=0.5) as monitor:
        spinners = [subprocess.Popen(spin) for _ in range(os.cpu_count() or 1)]
        for p in spinners:
            p.wait()
    history.close()
    summary = monitor.summary()
    assert summary["nodes_cpu_s"] >= 1.0 * len(spinners), summary
    phases = [e for e in history.entries() if e.op == "host-saturated"]
    assert monitor.episodes >= 1 and phases[0].args["edge"] == "start", summary
    assert summary["saturated_s"] >= SATURATED_SAMPLES * 0.5
    # The spinners are the harness's children, counted as the nodes: the saturation is
    # theirs, and the phase says so.
    end = next(e for e in phases if e.args["edge"] == "end")
    assert end.args["by_nodes"] is True and end.args["nodes_share"] >= 0.5, end.args
    assert end.args["busiest_node_cores"] >= 0.5, end.args


def test_whose_saturation_a_many_honest_nodes_or_one_spinning() -> None:
    """The nodes' share alone cannot tell a spinning node from a cluster too large for
    its host: the busiest node process can. A hundred nodes at 1.5% of a core each
    saturating two cores is the host's limit (inconclusive); one node at a whole core
    is the implementation (its failures stand); other tenants are never the nodes'."""
    from gossipcert.harness.drivers.hostload import _Episode

    many = _Episode(wall_s=10, busy_s=20, nodes_s=15,
                    node_pids={pid: 0.15 for pid in range(100)})
    assert many.whose()["by_nodes"] is False
    spinner = _Episode(wall_s=10, busy_s=20, nodes_s=11,
                       node_pids={1: 10.0, **{pid: 0.25 for pid in range(2, 6)}})
    assert spinner.whose() == {"nodes_share": 0.55, "busiest_node_cores": 1.0, "by_nodes": True}
    others = _Episode(wall_s=10, busy_s=20, nodes_s=2, node_pids={1: 2.0})
    assert others.whose()["by_nodes"] is False
