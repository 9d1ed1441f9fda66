"""One cluster interface, two drivers: every shipped scenario compiles to one sequence of
operations, which runs on the simulated driver (reference cores in the simulator) and on
the process backend, and the same checkers judge both histories.

The simulated half is fast (virtual time); the process half is slow (real nodes, real
proxies) and is the same sequence, from the same seed, that ``certify --scenario`` runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from gossipcert.harness.manifest import load_manifest
from gossipcert.harness.scenario import load_scenario, run_manifest, schedule, shipped_scenarios
from gossipcert.harness.simulated import simulate
from gossipcert.harness.verdict import load_catalogue

SHIPPED = sorted(shipped_scenarios())
NODES = [f"n{i}" for i in range(1, 6)]
SEED = 7


def _named(name: str) -> set[str]:
    """The MUST requirements whose scenario this is: what it must exercise and pass."""
    return {r.id for r in load_catalogue() if r.scenario == name and r.level == "MUST"}


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_scenario_runs_in_simulation(name: str) -> None:
    scenario = load_scenario(name)
    manifest = run_manifest(load_manifest("reference"), scenario)
    ops = schedule(scenario, NODES, SEED, manifest.timing)
    verdicts, entries = simulate(ops, NODES, timing=manifest.timing,
                                 policy=manifest.conflict_policy, seed=SEED,
                                 gossip_key=manifest.gossip_key, scenario=name)
    by_id = {v.id: v for v in verdicts}
    failed = {v.id: v.evidence for v in verdicts if v.status == "fail"}
    assert failed == {}
    for rid in _named(name):
        assert by_id[rid].status == "pass", (rid, by_id[rid].status, by_id[rid].evidence)
    # The history holds the sequence that produced it.
    steps = [e for e in entries if e.type == "step"]
    assert [s.args for s in steps] == [op.to_json() for op in ops
                                       if op.needs is None or op.needs in manifest.capabilities
                                       if not getattr(op, "when", "")
                                       or op.when in manifest.capabilities]


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_scenario_runs_on_processes(name: str, tmp_path: Path) -> None:
    """The same sequence on real processes: certify --scenario plans it from the same
    seed (schedule.json holds it) and the same checkers pass what it exercises."""
    run_dir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "gossipcert.harness.cli", "certify", "--impl", "reference",
         "--nodes", str(len(NODES)), "--seed", str(SEED), "--scenario", name,
         "--report-dir", str(run_dir)],
        capture_output=True, text=True, timeout=600)
    assert result.returncode in (0, 3), result.stderr[-3000:]
    report = json.loads((run_dir / "report.json").read_text())
    statuses = {r["id"]: r["status"] for r in report["requirements"]}
    assert not [rid for rid, status in statuses.items() if status == "fail"]
    for rid in _named(name):
        assert statuses[rid] == "pass", (rid, statuses[rid])
    scenario = load_scenario(name)
    manifest = run_manifest(load_manifest("reference"), scenario)
    planned = [op.to_json() for op in schedule(scenario, NODES, SEED, manifest.timing)]
    assert json.loads((run_dir / "schedule.json").read_text())["ops"] == planned
