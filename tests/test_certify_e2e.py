"""End to end: ``gossipcert certify`` on real clusters of 5 processes behind the link
plane. The quick run certifies only what it exercises and gives the same verdicts on two
seeds (the second with ``--json``, watched on a pseudo-terminal: the live step line);
each seeded defect fails its requirement in the quick run. The reference node's
full suite runs once, in the compliance run (``tests/test_compliance.py``), which checks
it with :func:`check_full_suite`; how often its verdict holds over many seeds is a
benchmark (``benchmarks/specificity.py``), not a test."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from gossipcert.harness.drivers.sweep import orphaned_processes
from gossipcert.harness.judging.verdict import load_catalogue
from gossipcert.harness.manifest import load_manifest
from gossipcert.harness.run.progress import ERASE
from gossipcert.harness.workloads.scenario import load_scenario, run_manifest, schedule
from test_cli_output import validate_result

IMPLS = Path(__file__).resolve().parent / "impls"
QUICK_IDS = {
    "MEM-JOIN", "FD-DETECT", "FD-NO-FALSE-POSITIVE", "BCAST-DELIVERY",
    "KV-CONVERGENCE", "KV-LWW", "PARTITION-HEAL",
}

pytestmark = pytest.mark.slow


def certify(impl: str, report_dir: Path, seed: int, *extra: str,
            timeout: float = 600) -> tuple[int, dict[str, Any], str]:
    result = subprocess.run(
        [sys.executable, "-m", "gossipcert.harness", "certify", "--impl", impl, "--nodes", "5",
         "--seed", str(seed), "--report-dir", str(report_dir), *extra],
        capture_output=True, text=True, timeout=timeout,
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert orphaned_processes() == {}, "the run left a process behind"
    report = json.loads((report_dir / "report.json").read_text())
    return result.returncode, report, result.stdout + result.stderr


def certify_on_a_terminal(impl: str, report_dir: Path, seed: int, *extra: str,
                          timeout: float = 600) -> tuple[int, dict[str, Any], str, str]:
    """``certify --json``, its stderr a pseudo-terminal (a person watching), its stdout a
    pipe (a tool reading the document): exit code, report, stdout, what the terminal got."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gossipcert.harness", "certify", "--impl", impl, "--nodes", "5",
         "--seed", str(seed), "--report-dir", str(report_dir), "--json", *extra],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunks.append(os.read(master, 65536))
                except OSError:  # every holder of the terminal is gone
                    break
            elif proc.poll() is not None:
                break
        stdout, _ = proc.communicate(timeout=60)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    terminal = b"".join(chunks).decode(errors="replace")
    assert "Traceback" not in terminal, terminal
    assert orphaned_processes() == {}, "the run left a process behind"
    report = json.loads((report_dir / "report.json").read_text())
    return proc.returncode, report, stdout.decode(), terminal


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {r["id"]: r["status"] for r in report["requirements"]}


def reference_plan(name: str, seed: int) -> list[dict[str, Any]]:
    """The operations scenario ``name`` plans for 5 reference nodes from ``seed``: what
    the run's ``schedule.json`` must hold."""
    scenario = load_scenario(name)
    timing = run_manifest(load_manifest("reference"), scenario).timing
    return [op.to_json() for op in schedule(scenario, [f"n{i}" for i in range(1, 6)], seed,
                                            timing)]


def check_full_suite(run_dir: Path, report: dict[str, Any]) -> None:
    """What the reference node's full suite (5 nodes) must show: every scenario the
    catalogue names run once on a fresh cluster, each the sequence its file plans from the
    run's seed and each with its faults, every requirement exercised and passed, PASS, and
    the suite's report directory laid out with each scenario's own run. Every shipped
    scenario is among them (``tests/test_scenarios.py`` holds the catalogue to it)."""
    assert report["verdict"] == "pass"
    assert statuses(report) == {r.id: "pass" for r in load_catalogue()}, statuses(report)
    cert = report["certificate"]
    assert cert["mode"] == "suite" and cert["untested"] == []
    assert cert["capabilities_not_claimed"] == []
    assert {"membership", "failure-detection", "kv", "crdt", "encryption"} <= set(
        cert["capabilities_certified"])
    scenarios = [r["scenario"] for r in report["runs"]]
    assert scenarios[0] == "default" and len(scenarios) == len(set(scenarios))
    assert set(scenarios) == {name for r in load_catalogue() for name in r.scenarios}
    policies = {r["scenario"]: r["conflict_policy"] for r in report["runs"]}
    assert policies["default"] == "lww" and policies["mv"] == "mv"
    # TIMING-TRAFFIC read from the link plane for every node, each far above its floor.
    traffic = next(r for r in report["requirements"] if r["id"] == "TIMING-TRAFFIC")
    rates = traffic["evidence"]["details"]["rates"]
    assert len(rates) == 5 and all(row["plane"] == "link" for row in rates), rates
    assert all(row["messages"] >= 10 * row["floor_messages"] for row in rates), rates
    # Steps preflight moved off a plane this machine lacks (as a plain user, the packet
    # plane's cut of ``partitions`` runs on the link plane, with a note).
    moved = {n["scenario"] for n in (report.get("preflight") or {}).get("notes", [])}
    for run in report["runs"]:
        sub = run_dir / run["dir"]
        assert (sub / "history.jsonl").stat().st_size > 0
        sub_report = json.loads((sub / "report.json").read_text())
        assert sub_report["verdict"] == run["verdict"]
        assert sub_report["faults"], f"scenario {run['scenario']} applied no fault"
        # Each scenario ran the sequence its file plans from the run's seed.
        planned = json.loads((sub / "schedule.json").read_text())
        assert planned["scenario"] == run["scenario"]
        expected = reference_plan(run["scenario"], planned["seed"])
        if run["scenario"] in moved:
            expected = [{**op, "plane": "link"} if op.get("plane") == "packet" else op
                        for op in expected]
        assert planned["ops"] == expected, run["scenario"]
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


def test_quick_run_certifies_only_what_it_exercises_the_same_on_two_seeds(
        tmp_path: Path) -> None:
    """The default scenario alone: what it exercises passes, the rest is untested, so
    INCOMPLETE (exit 3), never FAIL; a second seed gives every requirement the same
    status (a verdict that flips between seeds is a false FAIL waiting to happen)."""
    runs = []
    for seed in (11, 12):
        if seed == 11:
            code, report, output = certify("reference", tmp_path / f"run{seed}", seed, "--quick")
        else:  # with --json, watched on a terminal
            code, report, output, terminal = certify_on_a_terminal(
                "reference", tmp_path / f"run{seed}", seed, "--quick")
            assert_json_and_live_line(output, terminal, code)
        assert code == 3, output  # INCOMPLETE: its own exit code, not PASS and not FAIL
        assert report["verdict"] == "incomplete"
        found = statuses(report)
        assert {i: found[i] for i in QUICK_IDS} == dict.fromkeys(QUICK_IDS, "pass")
        assert not [i for i, s in found.items() if s in ("fail", "error")], found
        runs.append((found, report, output))
    assert runs[0][0] == runs[1][0], [found for found, _, _ in runs]
    found, report, output = runs[0]
    untested = {i for i, s in found.items() if s == "untested"}
    assert untested and set(report["certificate"]["untested"]) == untested
    assert "MEM-LEAVE" in untested and "KV-MV" in untested
    assert "untested: " in output and "verdict: INCOMPLETE" in output
    assert [f["op"] for f in report["faults"]] == ["kill", "partition", "heal"]
    assert sorted(p.name for p in (tmp_path / "run11" / "nodes").iterdir()) == [
        f"n{i}" for i in range(1, 6)]


def assert_json_and_live_line(stdout: str, terminal: str, code: int) -> None:
    """stdout is one document of the CLI result schema; the terminal saw the progress
    lines and the step line redrawn in place, and nothing of it is left drawn at exit."""
    document = json.loads(stdout)
    validate_result(document)
    assert document["exit_code"] == code and document["verdict"] == "incomplete"
    assert "verdict:" not in stdout and "cluster up: 5 nodes ready" in terminal
    drawn = [part for part in terminal.split(ERASE) if part]
    live = [part for part in drawn
            if re.fullmatch(r"default: step \d+/\d+: [a-z-]+, .* left", part.split("\n")[-1])]
    assert len(live) > 5, terminal[-3000:]
    tail = terminal.rsplit(ERASE, 1)[-1]
    assert "step " not in tail.rsplit("\n", 1)[-1], tail  # no live line left behind


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
