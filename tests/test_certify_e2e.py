"""End to end: certify real clusters of 5 processes behind the link plane, with a kill -9
and a partition; the reference node passes, each seeded defect fails its requirement."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.sweep import orphaned_processes

IMPLS = Path(__file__).resolve().parent / "impls"
REQUIREMENT_IDS = {
    "MEM-JOIN", "FD-DETECT", "FD-NO-FALSE-POSITIVE", "BCAST-DELIVERY",
    "KV-CONVERGENCE", "KV-LWW", "PARTITION-HEAL",
}

pytestmark = pytest.mark.slow


def certify(impl: str, report_dir: Path, seed: int) -> tuple[int, dict[str, Any], str]:
    result = subprocess.run(
        [sys.executable, "-m", "harness.cli", "certify", "--impl", impl, "--nodes", "5",
         "--seed", str(seed), "--report-dir", str(report_dir)],
        capture_output=True, text=True, timeout=300,
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert orphaned_processes() == {}, "the run left a process behind"
    report = json.loads((report_dir / "report.json").read_text())
    return result.returncode, report, result.stdout + result.stderr


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {r["id"]: r["status"] for r in report["requirements"]}


def test_reference_node_is_certified(tmp_path: Path) -> None:
    code, report, output = certify("reference", tmp_path / "run", seed=11)
    assert code == 0, output
    assert report["verdict"] == "pass"
    found = statuses(report)
    assert {i: found[i] for i in REQUIREMENT_IDS} == dict.fromkeys(REQUIREMENT_IDS, "pass")
    assert set(found.values()) <= {"pass", "not-applicable"}, found
    for req in report["requirements"]:
        if req["id"] in REQUIREMENT_IDS and req["unit"] == "ms":
            assert req["measured"] is not None and req["bound"] is not None
            assert req["measured"] <= req["bound"], req
    ops = [f["op"] for f in report["faults"]]
    assert ops == ["kill", "partition", "heal"]
    run_dir = tmp_path / "run"
    assert (run_dir / "report.md").read_text().startswith("# gossipcert report")
    assert (run_dir / "history.jsonl").stat().st_size > 0
    assert sorted(p.name for p in (run_dir / "nodes").iterdir()) == [f"n{i}" for i in range(1, 6)]


@pytest.mark.parametrize(
    ("impl", "failing"),
    [("never_dead", "FD-DETECT"), ("lww_oldest_wins", "KV-LWW")],
)
def test_seeded_defect_fails_its_requirement(tmp_path: Path, impl: str, failing: str) -> None:
    code, report, output = certify(str(IMPLS / impl / "manifest.yaml"), tmp_path / "run", seed=5)
    assert code == 1, output
    assert report["verdict"] == "fail"
    found = statuses(report)
    assert found[failing] == "fail", found
    assert found["MEM-JOIN"] == "pass"
    assert f"FAIL  {failing}" in output
