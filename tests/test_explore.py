"""``gossipcert explore`` on real processes: it finds a seeded defect, shrinks the failing
sequence on the real cluster and saves it; ``gossipcert replay`` of that file fails the
same requirement on a fresh cluster; and the reference node, explored as long, shows no
violation (no false FAIL). Nothing is left running either way.

The defect is one a short search finds and whose smallest failure does not depend on
timing: a node that acknowledges a write it then drops (two writes of one key on one
node). A last-writer-wins that keeps the oldest write (``lww_oldest_wins``) is not
tested here: the smallest failure explore draws for it is often a pair of concurrent
writes, which KV-LWW can judge only when the host happens to spread the two calls
beyond the clock-skew allowance, so whether a replay fails again depends on scheduling.
Its real-process search is measured in BENCHMARKS.md ("Explore"); certify proves it
fails KV-LWW on real processes (``test_certify_e2e.py``).
Budgets fit CI: the whole file takes about a minute.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from gossipcert.harness.drivers.sweep import orphaned_processes
from gossipcert.harness.run.replay import load_replay
from test_cli_output import validate_result

IMPLS = Path(__file__).resolve().parent / "impls"


def gossipcert(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gossipcert.harness", *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
@pytest.mark.parametrize(("defect", "requirement"), [
    ("acks_unkept_writes", "KV-NO-LOST-WRITE"),
])
def test_explore_finds_shrinks_and_saves_a_violation_that_replays(
        tmp_path: Path, defect: str, requirement: str) -> None:
    run_dir = tmp_path / "explore"
    found = gossipcert("explore", "--impl", str(IMPLS / defect), "--nodes", "3",
                       "--budget", "240s", "--seed", "1", "--report-dir", str(run_dir),
                       timeout=400)
    output = found.stdout + found.stderr[-4000:]
    assert found.returncode == 1, output
    assert "violation found" in found.stdout and "shrink step" in found.stderr, output
    assert orphaned_processes() == {}, "explore left a process behind"

    saved = load_replay(run_dir / "replay.json")
    assert requirement in saved.failure["requirements"], saved.failure  # type: ignore[index]
    assert saved.implementation == str(IMPLS / defect) and saved.backend == "process"
    assert saved.core.endswith(f"{defect}/defect.py:installed")
    report = json.loads((run_dir / "report.json").read_text())
    exploration = report["run"]["exploration"]
    shrunk_to = [op.describe() for op in saved.ops]
    if exploration["stopped_by"] == "shrunk":
        # Shrinking ran to its end: the start, the one or two client calls that make the
        # failure, the end.
        assert len(saved.ops) <= 6, shrunk_to
    else:
        # The budget ended it (a real cluster may fail a larger sequence first, and each
        # shrink step is a real run): what is saved is no larger than what was found, and
        # smaller whenever what was found could shrink.
        first = exploration["first_sequence_length"]
        assert len(saved.ops) < first or first <= 6, (first, shrunk_to)
    assert report["verdict"] == "fail"
    status = {r["id"]: r["status"] for r in report["requirements"]}
    assert status[requirement] == "fail"
    assert requirement in exploration["failing_requirements"]
    assert exploration["minimal_sequence"] == [op.to_json() for op in saved.ops]
    assert "## Exploration" in (run_dir / "report.md").read_text()
    for name in ("report.html", "report.junit.xml", "history.jsonl"):
        assert (run_dir / name).is_file(), name

    again = gossipcert("replay", str(run_dir / "replay.json"), "--report-dir",
                       str(tmp_path / "replay"))
    assert again.returncode == 1, again.stdout + again.stderr[-3000:]
    assert f"FAIL  {requirement}" in again.stdout
    assert orphaned_processes() == {}, "replay left a process behind"


@pytest.mark.slow
def test_explore_of_the_reference_node_finds_no_violation(tmp_path: Path) -> None:
    run_dir = tmp_path / "explore"
    # A short search: the pipeline's no-violation path, not a measurement of how rarely
    # explore cries wolf (benchmarks/explore.py runs the reference for minutes).
    # With --json: one document on stdout (specs/cli-result.schema.json).
    result = gossipcert("explore", "--impl", "reference", "--nodes", "3", "--budget", "30s",
                        "--seed", "2", "--report-dir", str(run_dir), "--json")
    output = result.stdout + result.stderr[-6000:]
    assert result.returncode == 0, output
    document = json.loads(result.stdout)
    validate_result(document)
    assert document["command"] == "explore" and document["exit_code"] == 0
    assert document["replay_file"] is None and document["report_dir"] == str(run_dir)
    summary = document["summary"]
    assert "no violation found in" in summary and "not a certificate" in summary
    assert not (run_dir / "replay.json").exists()
    report = json.loads((run_dir / "report.json").read_text())
    exploration = report["run"]["exploration"]
    assert exploration["outcome"] == "no violation found" and exploration["examples"] >= 5
    assert report["verdict"] != "fail"
    assert orphaned_processes() == {}, "explore left a process behind"
