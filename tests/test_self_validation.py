"""Self-validation: every seeded defect in tests/impls/ is flagged with the right
requirement id, and the reference passes the very same run.

Fast tests run each defect in simulation (the patched reference core in the simulator,
behind the same cluster interface as real nodes, judged by the real checkers). Slow tests
certify the patched node as real processes with the scenario its requirement names
(every MUST requirement has one). How often the reference node's verdicts hold over many
seeds is measured by ``benchmarks/specificity.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from gossipcert.harness.drivers.sweep import labelled_processes
from gossipcert.harness.workloads import operations as o
from gossipcert.harness.workloads.broadcast import Broadcast
from gossipcert.harness.workloads.faults import Heal, Kill, Partition, Restart
from gossipcert.harness.workloads.kv import Delete, Put
from gossipcert.harness.workloads.leave import Leave
from gossipcert.harness.workloads.operations import Op
from simulated_runs import IMPLS, defect_core, reference_timing, run_settled

N3 = ["n1", "n2", "n3"]
# defect folder -> (requirement it must fail, cluster, policy, steps)
CASES: dict[str, tuple[str, list[str], str, list[Op]]] = {
    "never_suspects": ("FD-DETECT", N3, "lww", [Kill("n3")]),
    "resurrects_dead": ("FD-DEAD-STAYS-DEAD", N3, "lww", [Kill("n3")]),
    "never_refutes": (
        "PARTITION-HEAL",
        N3,
        "lww",
        [
            Partition((("n1",), ("n2", "n3"))),
            o.Wait(6000, observe=False),
            Heal(),
        ],
    ),
    "lww_wrong_tiebreak": (
        "KV-LWW",
        N3,
        "lww",
        [
            # Clear of start-up traffic, so both clocks stand at logical 0: a tie.
            o.Wait(1000, observe=False),
            Put("n1", "k", "from-n1"),
            Put("n2", "k", "from-n2"),
        ],
    ),
    "rumors_one_hop": (
        "BCAST-DELIVERY",
        [f"n{i}" for i in range(1, 25)],
        "lww",
        [Broadcast("n1", "b")],
    ),
    "no_anti_entropy": (
        "KV-AFTER-PARTITION",
        N3,
        "lww",
        [
            Partition((("n1",), ("n2", "n3"))),
            Put("n1", "k", "one-side"),
            o.Wait(6000, observe=False),
            Heal(),
            o.Wait(100, observe=False),
        ],
    ),
    "forgets_state": (
        "KV-AFTER-RESTART",
        N3,
        "lww",
        [
            Put("n1", "k", "before"),
            o.Wait(1000, observe=False),
            Restart("n3"),
            o.Wait(100, observe=False),
        ],
    ),
    "loses_siblings": (
        "KV-MV",
        N3,
        "mv",
        [
            Put("n1", "k", "a"),
            Put("n2", "k", "b"),
        ],
    ),
    "knows_only_seeds": ("MEM-JOIN", [f"n{i}" for i in range(1, 6)], "lww",
                         [o.Wait(100, observe=False)]),
    "leaves_silently": ("MEM-LEAVE", N3, "lww", [Leave("n3")]),
    "no_kv_merge": (
        "KV-CONVERGENCE",
        N3,
        "lww",
        [
            Put("n1", "k", "a"),
            Put("n2", "j", "b"),
        ],
    ),
    "acks_unkept_writes": (
        "KV-NO-LOST-WRITE",
        N3,
        "lww",
        [
            Put("n1", "k", "a"),
            Put("n1", "k", "b"),
        ],
    ),
    "delete_without_tombstone": (
        "KV-DELETE-STAYS",
        N3,
        "lww",
        [
            Put("n1", "k", "a"),
            o.Wait(1000, observe=False),
            Delete("n2", "k"),
        ],
    ),
    "rejoins_shadowed": (
        "MEM-REJOIN",
        N3,
        "lww",
        [
            Kill("n3"),
            o.Wait(6000, observe=False),
            Restart("n3"),
        ],
    ),
}


def statuses(name: str, defect: bool) -> dict[str, Any]:
    requirement, nodes, policy, ops = CASES[name]
    verdicts, _ = run_settled(ops, nodes, core=defect_core(name) if defect else "",
                              policy=policy)
    return {v.id: v for v in verdicts}


@pytest.mark.parametrize("name", sorted(CASES))
def test_seeded_defect_is_flagged_with_its_requirement_in_memory(name: str) -> None:
    requirement = CASES[name][0]
    broken = statuses(name, defect=True)
    assert broken[requirement].status == "fail", (name, broken[requirement].evidence)
    reference = statuses(name, defect=False)
    assert reference[requirement].status == "pass", (name, reference[requirement].evidence)
    failing_on_reference = [v.id for v in reference.values() if v.status in ("fail", "error")]
    assert failing_on_reference == [], failing_on_reference


def test_a_wrong_key_write_let_in_by_an_unsealed_kv_sync_fails_in_memory() -> None:
    """unsealed_kv_sync keeps the wrong-key node out of every member list and broadcast,
    yet the Merkle hop it sends with its join, in the clear and accepted so, carries its
    write into the members' state: SEC-WRONG-KEY fails on that write alone. The
    reference, same run, passes."""
    from gossipcert.harness.manifest import new_gossip_key
    from gossipcert.harness.run.pipeline import simulate
    from gossipcert.harness.workloads.scenario import load_scenario, schedule

    timing = reference_timing()
    ops = schedule(load_scenario("security"), N3, 1, timing)
    for core, expected in ((defect_core("unsealed_kv_sync"), "fail"), ("", "pass")):
        verdicts, _ = simulate(ops, N3, timing=timing, core=core, gossip_key=new_gossip_key(),
                               scenario="security")
        found = {v.id: v for v in verdicts}
        sec = found["SEC-WRONG-KEY"]
        assert sec.status == expected, (core, sec.evidence)
        failing = [v.id for v in verdicts if v.status in ("fail", "error")]
        assert failing == ([] if expected == "pass" else ["SEC-WRONG-KEY"]), failing
        if expected == "fail":
            assert "holds key 'key-wrong-key-x1'" in str(sec.evidence), sec.evidence


def test_every_defect_folder_is_a_complete_implementation() -> None:
    from gossipcert.harness.manifest import load_manifest

    folders = sorted(p.name for p in IMPLS.iterdir() if (p / "manifest.yaml").exists())
    assert set(CASES) <= set(folders)
    # heartbeat/ is a correct, independent implementation (its defects are in its own
    # defects/ folder and tests/test_independent_impl.py).
    folders.remove("heartbeat")
    reference = load_manifest("reference")
    for name in folders:
        manifest = load_manifest(str(IMPLS / name / "manifest.yaml"))
        assert manifest.name.startswith("broken-")
        # One launcher runs every defect: the manifest names its patch, NAME/defect.py.
        assert (IMPLS / name / "defect.py").is_file()
        assert manifest.process is not None
        assert manifest.process.command[1:3] == ["{manifest_dir}/../defect_node.py",
                                                 f"--defect={name}"], name
        # Every defect declares the reference timing (declares_fast_timing lies about it).
        assert manifest.declared_timing == reference.declared_timing, name
    readme = (IMPLS / "README.md").read_text()
    for name in folders:
        assert f"`{name}/`" in readme, name


def test_one_launcher_runs_each_defect_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """``defect_node.py``: ``--defect`` picks the patch, which is on while the node runs and
    off after; ``--defect-flag`` reaches ``installed()``; ``node_args`` rewrites the node's
    arguments; everything else goes to the node unchanged."""
    import importlib.util

    from gossipcert.reference_node.core.node import Node

    spec = importlib.util.spec_from_file_location("defect_node", IMPLS / "defect_node.py")
    assert spec is not None and spec.loader is not None
    launcher = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launcher)
    seen: list[Any] = []

    def node(argv: list[str]) -> int:
        seen.append((argv, Node.__dict__["tick"] is not shipped_tick))
        return 0

    shipped_tick = Node.__dict__["tick"]
    monkeypatch.setattr(launcher, "main", node)
    assert launcher.run(["--defect=backdates_receipts", "--defect-flag=honest", "--id", "n1"]) == 0
    assert seen.pop() == (["--id", "n1"], True)
    assert Node.__dict__["tick"] is shipped_tick
    assert launcher.run(["--defect=declares_fast_timing", "--id", "n1",
                         "--probe-interval-ms", "300", "--probe-timeout-ms", "150"]) == 0
    assert seen.pop() == (["--id", "n1", "--probe-interval-ms", "300000",
                           "--probe-timeout-ms", "150"], False)
    with pytest.raises(SystemExit, match="no seeded defect 'nope'"):
        launcher.run(["--defect=nope", "--id", "n1"])


# ---------------------------------------------------------------- real processes (slow)


def certify(impl: str, report_dir: Path, seed: int, scenario: str = "default",
            quick: bool = False) -> tuple[int, dict[str, Any], str]:
    which = ["--quick"] if quick else ["--scenario", scenario]
    proc = subprocess.Popen(
        [sys.executable, "-m", "gossipcert.harness", "certify", "--impl", impl, "--nodes", "5",
         "--seed", str(seed), "--report-dir", str(report_dir), *which],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    stdout, stderr = proc.communicate(timeout=600)
    assert "Traceback" not in stderr, stderr
    # Run labels carry the certify process id; other runs on the machine are not ours.
    mine = {p: label for p, label in labelled_processes().items() if f"-{proc.pid}-" in label}
    assert mine == {}, "the run left a process behind"
    report = json.loads((report_dir / "report.json").read_text())
    return proc.returncode, report, stdout + stderr


# (defect folder, requirement it fails, shipped scenario that exposes it) on real processes.
REAL_PROCESS: list[tuple[str, str, str]] = [
        ("resurrects_dead", "FD-DEAD-STAYS-DEAD", "default"),
        ("never_refutes", "PARTITION-HEAL", "default"),
        ("no_anti_entropy", "KV-AFTER-PARTITION", "default"),
        ("loses_siblings", "KV-MV", "mv"),
        ("forgets_state", "KV-AFTER-RESTART", "crash-restart"),
        ("knows_only_seeds", "MEM-JOIN", "default"),
        ("ignores_acks", "FD-NO-FALSE-POSITIVE", "default"),
        ("acks_unkept_writes", "KV-NO-LOST-WRITE", "default"),
        ("delete_without_tombstone", "KV-DELETE-STAYS", "default"),
        ("rejoins_shadowed", "MEM-REJOIN", "crash-restart"),
        ("dead_on_first_miss", "FD-NO-FP-LATENCY", "latency-storm"),
        ("dead_on_first_miss", "FD-NO-FP-LOSS", "lossy"),
        ("wakes_up_killing", "FD-NO-FP-PAUSE", "paused-node"),
        ("gcounter_sums", "CRDT-G-COUNTER", "crdt"),
        ("pncounter_drops_decrements", "CRDT-PN-COUNTER", "crdt"),
        ("lww_register_oldest_wins", "CRDT-LWW-REGISTER", "crdt"),
        ("orset_ignores_removes", "CRDT-OR-SET", "crdt"),
        ("ignores_key", "SEC-WRONG-KEY", "security"),
        ("unsealed_kv_sync", "SEC-WRONG-KEY", "security"),
]
# Requirements proven on real processes by another test file: (file, defect). The
# reference-node defects that also fail them (never_suspects, rumors_one_hop,
# no_kv_merge, leaves_silently) are proven in memory here (CASES); one real-process run
# per requirement is the proof, and CI time is spent once.
PROVEN_ELSEWHERE = {
    "KV-LWW": ("tests/test_certify_e2e.py", "lww_oldest_wins"),
    "FD-DETECT": ("tests/test_certify_e2e.py", "never_dead"),
    "BCAST-DELIVERY": ("tests/test_independent_impl.py", "one-hop-broadcast"),
    "KV-CONVERGENCE": ("tests/test_independent_impl.py", "lying-digest"),
    "MEM-LEAVE": ("tests/test_independent_impl.py", "silent-leave"),
}


def test_every_must_requirement_has_a_defect_failing_it_on_real_processes() -> None:
    """The catalogue's MUST requirements each have a seeded defect certified as real
    processes, with the scenario the requirement names, listed in tests/impls/README.md."""
    from gossipcert.harness.judging.verdict import load_catalogue

    musts = {r.id: r for r in load_catalogue() if r.level == "MUST"}
    covered = {requirement for _, requirement, _ in REAL_PROCESS} | set(PROVEN_ELSEWHERE)
    assert set(musts) - covered == set()
    for requirement, (path, defect) in PROVEN_ELSEWHERE.items():
        text = (IMPLS.parent.parent / path).read_text()
        assert f'("{defect}", "{requirement}"' in text, (requirement, path, defect)
    for name, requirement, scenario in REAL_PROCESS:
        assert scenario == musts[requirement].scenario, (name, requirement)
        assert (IMPLS / name / "manifest.yaml").is_file(), name
    readme = (IMPLS / "README.md").read_text()
    for name, requirement, _ in REAL_PROCESS:
        row = next((line for line in readme.splitlines() if line.startswith(f"| `{name}/`")), "")
        assert f"`{requirement}`" in row and "real process" in row, (name, requirement)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "requirement", "scenario"), REAL_PROCESS)
def test_seeded_defect_fails_certify(tmp_path: Path, name: str, requirement: str,
                                     scenario: str) -> None:
    code, report, output = certify(str(IMPLS / name / "manifest.yaml"), tmp_path / "run", 5,
                                   scenario)
    found = {r["id"]: r["status"] for r in report["requirements"]}
    assert code == 1, output
    assert found[requirement] == "fail", (found, output[-3000:])
    # Failed for its seeded defect, not because its control API broke the contract.
    evidence = next(r["evidence"] for r in report["requirements"] if r["id"] == requirement)
    assert "contract violation" not in str(evidence), evidence


@pytest.mark.slow
def test_a_declared_capability_answering_501_fails(tmp_path: Path) -> None:
    """A node that declares broadcast and kv but answers 501 to them violates the
    contract: FAIL, never a pass by not-applicable."""
    code, report, output = certify(str(IMPLS / "answers_501" / "manifest.yaml"),
                                   tmp_path / "run", 2, quick=True)
    found = {r["id"]: r for r in report["requirements"]}
    assert code == 1 and report["verdict"] == "fail", output[-3000:]
    for rid in ("BCAST-DELIVERY", "KV-CONVERGENCE", "KV-LWW"):
        assert found[rid]["status"] == "fail", found[rid]
        assert "contract violation" in found[rid]["evidence"]["summary"]
    assert found["MEM-JOIN"]["status"] == "pass"
    assert "broadcast" not in report["certificate"]["capabilities_certified"]


@pytest.mark.slow
def test_reads_that_all_fail_are_errors_never_a_pass(tmp_path: Path) -> None:
    """A node whose kv reads all fail cannot be judged on kv: error, verdict INCOMPLETE
    (exit 3), and kv is not certified."""
    code, report, output = certify(str(IMPLS / "kv_reads_fail" / "manifest.yaml"),
                                   tmp_path / "run", 2, quick=True)
    found = {r["id"]: r["status"] for r in report["requirements"]}
    assert code == 3 and report["verdict"] == "incomplete", output[-3000:]
    for rid in ("KV-CONVERGENCE", "KV-LWW", "KV-NO-LOST-WRITE", "KV-DELETE-STAYS"):
        assert found[rid] == "error", found
    assert "kv" not in report["certificate"]["capabilities_certified"]
    assert "broadcast" in report["certificate"]["capabilities_certified"]
