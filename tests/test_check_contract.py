"""``gossipcert check-contract`` on real processes: our own nodes and the memberlist
example match the contract, and the two contract shims of tests/impls/ fail it (the wrong
field type fails certify too) naming endpoint and field."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from gossipcert.harness.drivers.sweep import labelled_processes
from host_tools import need_serf
from simulated_runs import IMPLS
from test_memberlist import build_memberlist

REPO = Path(__file__).resolve().parent.parent


def gossipcert(*args: str) -> tuple[int, str]:
    """Run the CLI; nothing it started may outlive it."""
    proc = subprocess.Popen([sys.executable, "-m", "gossipcert.harness", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO)
    stdout, stderr = proc.communicate(timeout=300)
    assert "Traceback" not in stderr, stderr
    mine = {p: label for p, label in labelled_processes().items() if f"-{proc.pid}-" in label}
    assert mine == {}, "the run left a process behind"
    return proc.returncode, stdout + stderr


def check(impl: str) -> tuple[int, dict[str, Any], str]:
    code, output = gossipcert("check-contract", "--impl", impl, "--nodes", "3", "--json")
    return code, (json.loads(output[output.index("{"):]) if code in (0, 1) else {}), output


@pytest.mark.slow
@pytest.mark.parametrize("impl", [
    "reference",
    "tests/impls/heartbeat/manifest.yaml",
    "serf",
    "maelstrom:tests/maelstrom_nodes/broadcast_gossip.py",
    "examples/memberlist/manifest.yaml",
])
def test_our_nodes_match_the_contract(impl: str) -> None:
    if impl == "serf":
        need_serf()
    if "memberlist" in impl:
        build_memberlist()
    code, result, output = check(impl)
    assert code == 0 and result["deviations"] == [], output
    assert result["calls"] >= 10


@pytest.mark.slow
def test_a_wrong_field_type_fails_naming_endpoint_and_field() -> None:
    code, output = gossipcert("check-contract", "--impl", str(IMPLS / "wrong_field_type"))
    assert code == 1, output
    row = next(line for line in output.splitlines() if "$.members[0].incarnation" in line)
    assert "GET /v1/members" in row and "integer" in row and 'string "' in row
    assert "deviation(s)" in output


@pytest.mark.slow
def test_a_capability_served_undeclared_fails() -> None:
    code, result, output = check(str(IMPLS / "answers_unclaimed"))
    assert code == 1, output
    found = {d["endpoint"]: d for d in result["deviations"]}
    assert found["GET /v1/kv"]["expected"] == "status 501 (capability 'kv' is not declared)"
    assert found["GET /v1/kv"]["got"] == "status 200"
    assert "POST /v1/leave" in found  # probed last, on the last node


@pytest.mark.slow
def test_certify_names_the_contract_violation(tmp_path: Path) -> None:
    """certify records the schema check of every response: the wrong field type fails
    the requirements that read members as a contract violation, not as a confusing
    checker failure, while broadcast and kv (which never read members) still pass."""
    code, output = gossipcert("certify", "--impl", str(IMPLS / "wrong_field_type"),
                              "--nodes", "3", "--seed", "1", "--quick",
                              "--report-dir", str(tmp_path / "run"))
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    found = {r["id"]: r for r in report["requirements"]}
    assert code == 1, output[-3000:]
    summary = found["MEM-JOIN"]["evidence"]["summary"]
    assert found["MEM-JOIN"]["status"] == "fail"
    assert summary.startswith("contract violation"), summary
    assert "GET /v1/members at $.members[0].incarnation: expected integer" in summary
    assert found["BCAST-DELIVERY"]["status"] == "pass"


def test_bad_input_keeps_its_exit_code(tmp_path: Path) -> None:
    code, output = gossipcert("check-contract", "--impl", str(tmp_path / "missing.yaml"))
    assert code == 2 and "no such file" in output, output
