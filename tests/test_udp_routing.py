"""Datagrams through the link plane on real processes, no root needed: the reference node
(which routes its datagrams through its UDP dial map) judged for FD-NO-FP-LOSS under loss
that the link plane's UDP proxies apply, and a node that ignores its UDP dial map named
before any fault is applied to its links."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from gossipcert.harness.drivers.sweep import orphaned_processes

IMPLS = Path(__file__).resolve().parent / "impls"

pytestmark = pytest.mark.slow


def certify(impl: str, report_dir: Path, scenario: str) -> tuple[int, str]:
    result = subprocess.run(
        [sys.executable, "-m", "gossipcert.harness", "certify", "--impl", impl, "--nodes", "3",
         "--seed", "3", "--scenario", scenario, "--report-dir", str(report_dir)],
        capture_output=True, text=True, timeout=300,
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert orphaned_processes() == {}, "the run left a process behind"
    return result.returncode, result.stdout + result.stderr


def history(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]


def test_the_reference_node_keeps_live_members_alive_under_datagram_loss(
        tmp_path: Path) -> None:
    """``lossy`` on 3 reference nodes: the loss is the link plane's, on the UDP proxies
    (each node started with a UDP dial map), the proxies dropped datagrams while it held,
    and FD-NO-FP-LOSS passed on that evidence."""
    code, output = certify("reference", tmp_path / "run", "lossy")
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    found = {r["id"]: r["status"] for r in report["requirements"]}
    assert found["FD-NO-FP-LOSS"] == "pass", output[-3000:]
    assert "fail" not in found.values() and code == 3, output[-3000:]  # one scenario only
    entries = history(tmp_path / "run")
    starts = [e for e in entries if e["type"] == "invoke" and e["op"] == "start"]
    assert all("--udp-route" in e["args"]["argv"] for e in starts)
    loss = [e for e in entries if e["type"] == "fault" and e["op"] == "loss"]
    assert len(loss) == 1 and loss[0]["args"]["plane"] == "link"
    assert loss[0]["args"]["protocols"] == ["udp"]
    heal = next(e for e in entries if e["type"] == "fault" and e["op"] == "heal"
                and e["time_ms"] > loss[0]["time_ms"])
    lost = heal["args"]["datagrams_lost"]
    assert lost["plane"] == "link" and lost["links"] == 6
    # 10% of what crossed the lossy proxies, well inside chance.
    assert lost["datagrams"] > 50 and 0.02 < lost["dropped"] / lost["datagrams"] < 0.25, lost


def test_a_node_that_ignores_its_udp_dial_map_is_named_before_its_links_are_faulted(
        tmp_path: Path) -> None:
    """bypasses_udp_routes declares udp_route_args but sends its datagrams to its peers'
    own addresses: its UDP proxies relay none, so the loss (like a cut) would not touch
    them. The harness says so in one line (exit 2) rather than judge a fault that never
    applied."""
    code, output = certify(str(IMPLS / "bypasses_udp_routes"), tmp_path / "run", "lossy")
    assert code == 2, output[-3000:]
    assert "sent no datagram through its UDP proxies" in output, output[-3000:]
    assert "bypassing the link plane, so a cut would not cut it" in output
    faults = [e for e in history(tmp_path / "run") if e["type"] == "fault"]
    assert not any(e["op"] == "loss" for e in faults)
