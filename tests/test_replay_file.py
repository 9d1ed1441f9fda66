"""Replay files: what explore saves reads back the same, a bad file gets one clear error and
exit 2 before anything starts, and ``--sim`` replays only the reference core (or the
seeded defect a file records), judging as certify does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from gossipcert.harness.manifest import load_manifest
from gossipcert.harness.run.replay import (
    REPLAY_FORMAT,
    ReplayError,
    ReplayFile,
    defect_core,
    load_replay,
    save_replay,
)
from gossipcert.harness.workloads import operations as o
from gossipcert.harness.workloads.faults import Kill
from gossipcert.harness.workloads.kv import Put

IMPLS = Path(__file__).resolve().parent / "impls"
NODES = ["n1", "n2", "n3"]
TIMING = {k: int(v) for k, v in load_manifest("reference").timing.items()}
# Two writes of one key on one node: the reference keeps the second; a node that drops
# a write while the first is still queued for gossip (acks_unkept_writes) loses it.
TWO_WRITES = [o.AwaitMembers(), Put("n1", "k0", "n1/w1"), Put("n1", "k0", "n1/w2"),
              o.AwaitConvergence(label="end")]


def valid(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = ReplayFile(nodes=NODES, ops=TWO_WRITES, timing=dict(TIMING),
                                      backend="process").to_dict()
    data.update(changes)
    return data


def write(tmp_path: Path, data: Any, name: str = "replay.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def run_replay(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gossipcert.harness", "replay", *args],
                          capture_output=True, text=True, timeout=120)


def test_a_saved_file_reads_back_the_same(tmp_path: Path) -> None:
    manifest = load_manifest(str(IMPLS / "acks_unkept_writes"))
    saved = ReplayFile(nodes=NODES, ops=TWO_WRITES, implementation="tests/impls/x",
                       name=manifest.name, manifest=str(manifest.path), backend="docker",
                       timing={**TIMING, "probe_timeout_ms": 150.5}, timing_profile="local",
                       conflict_policy="mv", core=defect_core(manifest), seed=7, example=3,
                       failure={"requirements": ["KV-NO-LOST-WRITE"], "evidence": "lost"})
    path = tmp_path / "replay.json"
    save_replay(path, saved)
    assert json.loads(path.read_text())["format"] == REPLAY_FORMAT
    assert load_replay(path) == saved
    assert saved.core.endswith("acks_unkept_writes/defect.py:installed")


def test_defect_cores_are_found_only_beside_a_manifest_with_one() -> None:
    assert defect_core(load_manifest("reference")) == ""
    assert defect_core(load_manifest(str(IMPLS / "heartbeat"))) == ""
    assert defect_core(load_manifest(str(IMPLS / "orset_ignores_removes"))).endswith(
        "orset_ignores_removes/defect.py:installed")


BAD_FILES: list[tuple[Any, str]] = [
    ("{not json", "is not JSON"),
    ("[1, 2]", "expected a JSON object"),
    (valid(format="gossipcert-ops/2"), "'format' is 'gossipcert-ops/2'"),
    (valid(format="gossipcert-schedule/1"), "a format that is gone"),
    (valid(nodes=["n1"]), "'nodes' must list at least two distinct node ids"),
    (valid(nodes=["n1", "n1", "n2"]), "'nodes' must list at least two distinct node ids"),
    (valid(ops=[]), "'ops' must be a non-empty list"),
    (valid(ops=[{"op": "teleport", "node": "n1"}]), "unknown op 'teleport'"),
    (valid(ops=[{"op": "put", "node": "n1", "key": "k"}]), "missing field 'value'"),
    (valid(ops=[{"op": "kill", "node": "n9"}]), "names node 'n9', not one of 'nodes'"),
    (valid(timing={"probe_interval_ms": "fast"}), "'timing' must map timing names"),
    (valid(backend="kubernetes"), "'backend' is 'kubernetes'"),
    (valid(conflict_policy="crdt"), "'conflict_policy' must be lww or mv"),
    (valid(failure=["KV-LWW"]), "'failure' must be an object"),
    (valid(implementation=7), "'implementation' must be a string"),
]


@pytest.mark.parametrize(("data", "fragment"), BAD_FILES)
def test_bad_files_are_rejected_with_one_clear_error(tmp_path: Path, data: Any,
                                                     fragment: str) -> None:
    path = write(tmp_path, data)
    with pytest.raises(ReplayError) as caught:
        load_replay(path)
    assert fragment in str(caught.value)


@pytest.mark.parametrize(("data", "fragment"), BAD_FILES[:4] + BAD_FILES[9:10])
def test_a_bad_file_exits_2_with_one_line(tmp_path: Path, data: Any, fragment: str) -> None:
    result = run_replay(str(write(tmp_path, data)))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("gossipcert: error:")]
    assert len(errors) == 1 and fragment in errors[0], result.stderr


def test_a_missing_file_exits_2(tmp_path: Path) -> None:
    result = run_replay(str(tmp_path / "absent.json"))
    assert result.returncode == 2 and "cannot read" in result.stderr


def test_real_clusters_need_nodes_named_as_they_name_them(tmp_path: Path) -> None:
    ops = [o.AwaitMembers(), Kill("b")]
    path = write(tmp_path, valid(nodes=["a", "b", "c"], ops=[op.to_json() for op in ops]))
    result = run_replay(str(path), "--report-dir", str(tmp_path / "run"))
    assert result.returncode == 2, result.stderr
    assert "a real cluster names its nodes n1, n2, n3" in result.stderr


def test_sim_replays_only_the_reference_core(tmp_path: Path) -> None:
    heartbeat = valid(implementation=str(IMPLS / "heartbeat"), core="")
    result = run_replay(str(write(tmp_path, heartbeat)), "--sim")
    assert result.returncode == 2, result.stderr
    assert "--sim replays the reference node's core only" in result.stderr
    result = run_replay(str(write(tmp_path, valid())), "--sim", "--impl",
                        str(IMPLS / "heartbeat"))
    assert result.returncode == 2 and "not " in result.stderr


def test_sim_replay_passes_on_the_reference_and_fails_on_the_recorded_defect(
        tmp_path: Path) -> None:
    reference = run_replay(str(write(tmp_path, valid(), "ok.json")), "--sim")
    assert reference.returncode == 0, reference.stdout + reference.stderr
    assert "verdict: PASS" in reference.stdout
    core = f"{IMPLS / 'acks_unkept_writes' / 'defect.py'}:installed"
    defect = valid(implementation=str(IMPLS / "acks_unkept_writes"), core=core,
                   failure={"requirements": ["KV-NO-LOST-WRITE"]})
    path = write(tmp_path, defect, "defect.json")
    failing = run_replay(str(path), "--sim")
    assert failing.returncode == 1, failing.stdout + failing.stderr
    assert "FAIL  KV-NO-LOST-WRITE" in failing.stdout
    assert "still failing: KV-NO-LOST-WRITE" in failing.stdout
    # The fix, in simulation: the same file against the reference core passes.
    fixed = run_replay(str(path), "--sim", "--impl", "reference")
    assert fixed.returncode == 0, fixed.stdout
    assert "still failing: none" in fixed.stdout


def test_a_file_recorded_in_simulation_replays_there_by_default(tmp_path: Path) -> None:
    result = run_replay(str(write(tmp_path, valid(backend="simulation"))))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "in simulation" in result.stdout


@pytest.mark.parametrize(("args", "fragment"), [
    (["--attempts", "0"], "--attempts must be at least 1"),
    (["--sim", "--attempts", "2"], "the simulator replays deterministically"),
])
def test_attempts_out_of_place_exit_2(tmp_path: Path, args: list[str], fragment: str) -> None:
    result = run_replay(str(write(tmp_path, valid())), *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert fragment in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_real_replay_tries_fresh_clusters_until_a_must_fails(tmp_path: Path) -> None:
    # The reference node keeps the second write: every attempt passes, and each one ran.
    passing = run_replay(str(write(tmp_path, valid(), "ok.json")), "--impl", "reference",
                         "--attempts", "2", "--report-dir", str(tmp_path / "ok"))
    assert passing.returncode == 0, passing.stdout + passing.stderr
    assert "attempt 2 of 2" in passing.stderr
    assert "(2 attempts, each on a fresh cluster" in passing.stdout
    assert "verdict: PASS (no MUST failed in 2 attempts)" in passing.stdout
    # The defect drops the first write every time: the first attempt fails, no other runs.
    defect = valid(implementation=str(IMPLS / "acks_unkept_writes"),
                   failure={"requirements": ["KV-NO-LOST-WRITE"]})
    failing = run_replay(str(write(tmp_path, defect, "defect.json")), "--attempts", "3",
                         "--report-dir", str(tmp_path / "defect"))
    assert failing.returncode == 1, failing.stdout + failing.stderr
    assert "(attempt 1 of 3)" in failing.stdout and "attempt 2 of" not in failing.stderr
    assert "still failing: KV-NO-LOST-WRITE" in failing.stdout
    report = json.loads((tmp_path / "defect" / "report.json").read_text())
    assert report["verdict"] == "fail"
