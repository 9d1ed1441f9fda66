"""The harness watches its own host: a stall beyond the probe timeout makes the run's
timing failures inconclusive, never a FAIL of the implementation."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from gossipcert.harness.drivers.hostlag import LagMonitor
from gossipcert.harness.history import History
from gossipcert.harness.workloads.failure_detection import check_failure_detection
from test_checkers import Hist, check, final, formed, killed_n3, lww, writes


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


def lagged(h: Hist) -> Hist:
    h.rows.append({"time_ms": 12_000, "type": "phase", "op": "host-lag",
                   "args": {"edge": "start", "lag_ms": 900.0, "threshold_ms": 150}})
    h.rows.append({"time_ms": 12_900, "type": "phase", "op": "host-lag",
                   "args": {"edge": "end", "lag_ms": 900.0, "threshold_ms": 150}})
    return h


def test_timing_failures_of_a_lagged_run_are_inconclusive() -> None:
    late = killed_n3(13000, 22500)
    assert check(check_failure_detection, "FD-DETECT", late.build()).status == "fail"
    verdict = check(check_failure_detection, "FD-DETECT", lagged(late).build())
    assert verdict.status == "error"
    assert verdict.evidence.startswith("inconclusive: the harness's host was overloaded")
    assert "900 ms" in verdict.evidence
    # A pass stays a pass, and what a node stores does not depend on the harness's pace.
    fine = check(check_failure_detection, "FD-DETECT", lagged(killed_n3(13000, 14000)).build())
    assert fine.status == "pass"
    wrong = lagged(final(writes(formed()), {"n1": ["a"], "n2": ["a"], "n3": ["a"]}))
    assert lww(wrong).status == "fail"


def saturated(h: Hist) -> Hist:
    h.rows.append({"time_ms": 12_000, "type": "phase", "op": "host-saturated",
                   "args": {"edge": "start", "busy": 0.99, "cpus": 2}})
    h.rows.append({"time_ms": 16_000, "type": "phase", "op": "host-saturated",
                   "args": {"edge": "end", "busy": 0.5, "cpus": 2, "nodes_cpu_s": 7.5}})
    return h


def test_timing_failures_of_a_run_on_a_saturated_host_are_inconclusive() -> None:
    late = killed_n3(13000, 22500)
    verdict = check(check_failure_detection, "FD-DETECT", saturated(late).build())
    assert verdict.status == "error"
    assert verdict.evidence.startswith("inconclusive: the host could not keep up")
    assert "2 CPU(s) were saturated" in verdict.evidence
    wrong = saturated(final(writes(formed()), {"n1": ["a"], "n2": ["a"], "n3": ["a"]}))
    assert lww(wrong).status == "fail"


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
