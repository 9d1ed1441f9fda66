"""End to end: ``gossipcert certify`` on real clusters of 5 processes behind the link
plane. The reference node's full suite exercises every requirement of the catalogue and
passes ten runs in a row with identical verdicts; each seeded defect fails its
requirement in the quick run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from gossipcert.harness.sweep import orphaned_processes
from gossipcert.harness.verdict import load_catalogue

IMPLS = Path(__file__).resolve().parent / "impls"
QUICK_IDS = {
    "MEM-JOIN", "FD-DETECT", "FD-NO-FALSE-POSITIVE", "BCAST-DELIVERY",
    "KV-CONVERGENCE", "KV-LWW", "PARTITION-HEAL",
}

pytestmark = pytest.mark.slow


def certify(impl: str, report_dir: Path, seed: int, *extra: str,
            timeout: float = 600) -> tuple[int, dict[str, Any], str]:
    result = subprocess.run(
        [sys.executable, "-m", "gossipcert.harness.cli", "certify", "--impl", impl, "--nodes", "5",
         "--seed", str(seed), "--report-dir", str(report_dir), *extra],
        capture_output=True, text=True, timeout=timeout,
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert orphaned_processes() == {}, "the run left a process behind"
    report = json.loads((report_dir / "report.json").read_text())
    return result.returncode, report, result.stdout + result.stderr


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {r["id"]: r["status"] for r in report["requirements"]}


def test_reference_full_suite_passes_ten_runs_in_a_row(tmp_path: Path) -> None:
    """The default ``certify``: every scenario the catalogue names, every requirement
    exercised and passed, PASS (exit 0), the same verdicts ten times in a row."""
    catalogue = load_catalogue()
    seen: list[dict[str, str]] = []
    for seed in range(1, 11):
        run_dir = tmp_path / f"run{seed}"
        code, report, output = certify("reference", run_dir, seed)
        found = statuses(report)
        assert code == 0, (seed, {i: s for i, s in found.items() if s != "pass"},
                           output[-3000:])
        assert report["verdict"] == "pass"
        assert found == {r.id: "pass" for r in catalogue}, found
        seen.append(found)
        if seed == 1:
            _check_suite_layout(run_dir, report)
    assert all(v == seen[0] for v in seen), seen


def _check_suite_layout(run_dir: Path, report: dict[str, Any]) -> None:
    cert = report["certificate"]
    assert cert["mode"] == "suite" and cert["untested"] == []
    assert cert["capabilities_not_claimed"] == []
    assert {"membership", "failure-detection", "kv", "crdt", "encryption"} <= set(
        cert["capabilities_certified"])
    scenarios = [r["scenario"] for r in report["runs"]]
    assert scenarios[0] == "default" and len(scenarios) == len(set(scenarios))
    assert set(scenarios) == {r.scenario for r in load_catalogue()}
    policies = {r["scenario"]: r["conflict_policy"] for r in report["runs"]}
    assert policies["default"] == "lww" and policies["mv"] == "mv"
    for run in report["runs"]:
        sub = run_dir / run["dir"]
        assert (sub / "history.jsonl").stat().st_size > 0
        assert json.loads((sub / "report.json").read_text())["verdict"] == run["verdict"]
    for req in report["requirements"]:
        if req["unit"] == "ms" and req["measured"] is not None:
            assert req["measured"] <= req["bound"], req
    md = (run_dir / "report.md").read_text()
    assert md.startswith("# gossipcert report") and "**Verdict: PASS**" in md
    assert "## Scenario runs" in md and "- untested: none" in md
    html = (run_dir / "report.html").read_text()
    assert "Verdict: PASS" in html and 'href="scenarios/default/report.html"' in html
    junit = (run_dir / "report.junit.xml").read_text()
    assert '<property name="verdict" value="pass"' in junit and 'failures="0"' in junit


def test_quick_run_certifies_only_what_it_exercises(tmp_path: Path) -> None:
    code, report, output = certify("reference", tmp_path / "run", 11, "--quick")
    assert code == 3, output  # INCOMPLETE: its own exit code, not PASS and not FAIL
    assert report["verdict"] == "incomplete"
    found = statuses(report)
    assert {i: found[i] for i in QUICK_IDS} == dict.fromkeys(QUICK_IDS, "pass")
    untested = {i for i, s in found.items() if s == "untested"}
    assert untested and set(report["certificate"]["untested"]) == untested
    assert "MEM-LEAVE" in untested and "KV-MV" in untested
    assert "untested: " in output and "verdict: INCOMPLETE" in output
    assert [f["op"] for f in report["faults"]] == ["kill", "partition", "heal"]
    run_dir = tmp_path / "run"
    assert sorted(p.name for p in (run_dir / "nodes").iterdir()) == [f"n{i}" for i in range(1, 6)]


@pytest.mark.parametrize(
    ("impl", "failing"),
    [("never_dead", "FD-DETECT"), ("lww_oldest_wins", "KV-LWW")],
)
def test_seeded_defect_fails_its_requirement(tmp_path: Path, impl: str, failing: str) -> None:
    code, report, output = certify(str(IMPLS / impl / "manifest.yaml"), tmp_path / "run", 5,
                                   "--quick")
    assert code == 1, output
    assert report["verdict"] == "fail"
    found = statuses(report)
    assert found[failing] == "fail", found
    assert found["MEM-JOIN"] == "pass"
