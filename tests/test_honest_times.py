"""Times a node reports, and timing it declares, cannot buy it a looser verdict.

Real processes, default scenario (``--quick``), five nodes:

* ``stamps_lww_late/`` stamps its writes an hour ahead, so it wins every LWW race:
  KV-LWW fails on the timestamps themselves, named as clock violations.
* ``backdates_receipts/`` holds every broadcast 6 s before relaying it but stamps the
  receipt with the time the rumor reached it: BCAST-DELIVERY fails at the delay the
  harness saw, the stamps listed as clock violations; told to stamp honestly, the same
  node fails the same way, so lying gained it nothing.
* ``backdates_deaths/`` takes 16 s to declare a killed node dead, stamps the death with
  the time it began to suspect it and answers 500 to every members read meanwhile:
  FD-DETECT fails at the detection the harness saw (it passed at the stamp, about the
  suspicion, when only reads that answered bounded a stamp), the stamps listed as clock
  violations.
* a manifest declaring timing far slower than the default profile (and leaving one
  parameter out) while its nodes run fast is judged at the profile: every bound derives
  from the profile's timing, none from the declaration.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from gossipcert.harness.drivers.sweep import labelled_processes
from gossipcert.harness.judging.bounds import derived_parameters, evaluate
from gossipcert.harness.judging.verdict import load_catalogue
from gossipcert.harness.profiles import DEFAULT_PROFILE, judged_timing
from test_checkers import TIMING

IMPLS = Path(__file__).resolve().parent / "impls"
NODES = 5


def certify(impl: Path, report_dir: Path, seed: int = 5) -> tuple[int, dict[str, Any], str]:
    """``gossipcert certify --quick`` on five nodes: exit code, report.json, output."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "gossipcert.harness", "certify", "--impl", str(impl), "--nodes",
         str(NODES), "--seed", str(seed), "--report-dir", str(report_dir), "--quick"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    stdout, stderr = proc.communicate(timeout=600)
    assert "Traceback" not in stderr, stderr
    mine = {p: label for p, label in labelled_processes().items() if f"-{proc.pid}-" in label}
    assert mine == {}, "the run left a process behind"
    report = json.loads((report_dir / "report.json").read_text())
    return proc.returncode, report, stdout + stderr


def by_id(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in report["requirements"]}


def defect(folder: str) -> ModuleType:
    """A defect folder's ``defect.py``, for its constants."""
    spec = importlib.util.spec_from_file_location(f"_defect_{folder}", IMPLS / folder / "defect.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_manifest(path: Path, manifest: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")
    return path


# ------------------------------------------------------------------ LWW stamped late


@pytest.mark.slow
def test_writes_stamped_in_the_future_fail_kv_lww(tmp_path: Path) -> None:
    ahead_ms = defect("stamps_lww_late").AHEAD_MS
    code, report, output = certify(IMPLS / "stamps_lww_late" / "manifest.yaml", tmp_path / "run")
    assert code == 1 and report["verdict"] == "fail", output[-3000:]
    lww = by_id(report)["KV-LWW"]
    assert lww["status"] == "fail", lww
    assert "clock violation" in lww["evidence"]["summary"], lww["evidence"]["summary"]
    stamped = [c for v in lww["evidence"]["details"]["violations"]
               for c in v.get("clock_violations", [])]
    assert stamped, lww["evidence"]["details"]
    for violation in stamped:
        assert "clock violation" in violation["reasons"][0]
        wall = violation["write"]["timestamp"][0]
        # An hour ahead of the harness's own call, far beyond the allowed skew.
        assert wall - violation["completed_ms"] > ahead_ms - 60_000, violation


# ------------------------------------------------------- broadcasts received late, backdated


def receipts_manifest(tmp_path: Path, *, honest: bool) -> Path:
    """``backdates_receipts``' manifest, made to stamp truthfully when ``honest``."""
    folder = IMPLS / "backdates_receipts"
    manifest = yaml.safe_load((folder / "manifest.yaml").read_text(encoding="utf-8"))
    process = manifest["launch"]["process"]
    command = [str(word).replace("{manifest_dir}", str(folder)) for word in process["command"]]
    process["command"] = command + (["--defect-flag=honest"] if honest else [])
    return write_manifest(tmp_path / ("honest.yaml" if honest else "lying.yaml"), manifest)


@pytest.mark.slow
def test_backdated_receipts_fail_at_the_delay_the_harness_saw(tmp_path: Path) -> None:
    hold_ms = defect("backdates_receipts").HOLD_MS

    code, report, output = certify(receipts_manifest(tmp_path, honest=False), tmp_path / "lying")
    assert code == 1 and report["verdict"] == "fail", output[-3000:]
    lying = by_id(report)["BCAST-DELIVERY"]
    assert lying["status"] == "fail", lying
    assert hold_ms > lying["bound"], lying["bound"]
    details = lying["evidence"]["details"]
    violations = details.get("clock_violations")
    assert violations, details
    assert "clock violation" in lying["evidence"]["summary"]
    sent = {d["member"]: d["sent_ms"] for d in details["late"]}
    for violation in violations:
        assert violation["kind"] == "broadcast", violation
        t0 = sent[violation["node"]]
        # Stamped when the rumor arrived, a whole hold before the harness could see it
        # (a member that got it from a relayer, which held it too, arrived a hold or more
        # after the send); judged when the harness saw it. 1 ms: the node stamps whole ms.
        assert violation["used_ms"] - violation["claimed_ms"] >= hold_ms - 1, violation
        assert violation["used_ms"] - t0 >= hold_ms, violation
    # Every member but the (killed) origin held it: each delivery judged late.
    assert {v["node"] for v in violations} == set(sent), (violations, sent)
    assert all(d["latency_ms"] >= hold_ms for d in details["late"]), details["late"]
    assert lying["measured"] >= hold_ms, lying

    code, report, output = certify(receipts_manifest(tmp_path, honest=True), tmp_path / "honest")
    assert code == 1 and report["verdict"] == "fail", output[-3000:]
    honest = by_id(report)["BCAST-DELIVERY"]
    assert honest["status"] == "fail", honest
    assert not honest["evidence"]["details"].get("clock_violations"), honest["evidence"]
    assert "clock violation" not in honest["evidence"]["summary"]
    # The lie gained nothing: the honest node is judged late at the same hold.
    assert honest["measured"] >= hold_ms, honest


# ---------------------------------------------- deaths backdated behind failing reads


@pytest.mark.slow
def test_deaths_backdated_behind_failing_reads_fail_at_the_detection_seen(
    tmp_path: Path,
) -> None:
    hold_ms = defect("backdates_deaths").HOLD_MS
    manifest = IMPLS / "backdates_deaths" / "manifest.yaml"
    code, report, output = certify(manifest, tmp_path / "run")
    assert code == 1 and report["verdict"] == "fail", output[-3000:]
    detect = by_id(report)["FD-DETECT"]
    assert detect["status"] == "fail", detect
    assert hold_ms > detect["bound"], detect["bound"]
    assert detect["measured"] >= hold_ms, detect
    violations = detect["evidence"]["details"].get("clock_violations")
    assert violations, detect["evidence"]
    assert "clock violation" in detect["evidence"]["summary"]
    # The node answers 500 while any member is suspect: every stamp it made behind those
    # failed reads (the suspicion's own, a member's return to alive seen while another
    # is still suspect, as well as the backdated death) is a violation.
    for violation in violations:
        assert violation["kind"] == "member", violation
        assert violation["status"] in ("alive", "suspect", "dead"), violation
        assert "failed a members read" in violation["reason"], violation
    deaths = [v for v in violations if v["status"] == "dead"]
    assert deaths, violations
    for violation in deaths:
        # Stamped at the suspicion, counted when the harness could see it: a hold later.
        assert violation["used_ms"] - violation["claimed_ms"] >= hold_ms - 1000, violation


# ----------------------------------------------------------- declared slower than the profile

FAST = dict(TIMING)  # what the nodes really run: the reference timing
DECLARED = {  # what the manifest claims: far slower, push-pull left out
    "probe_interval_ms": 20000,
    "probe_timeout_ms": 150,
    "indirect_checks": 3,
    "suspicion_mult": 10,
    "suspicion_max_timeout_mult": 6,
    "gossip_interval_ms": 5000,
    "fanout": 3,
    "retransmit_mult": 4,
}


def slow_declaring_manifest(path: Path) -> Path:
    command = ["{python}", "-m", "reference_node", "--id", "{id}", "--gossip", "{gossip_addr}",
               "--control", "{control_addr}", "--conflict-policy", "lww"]
    for name, value in FAST.items():
        command += ["--" + name.replace("_", "-"), str(value)]
    return write_manifest(path, {
        "name": "broken-declares-slow-timing",
        "contract": "v1",
        "version": "0.1.0",
        "capabilities": ["membership", "failure-detection", "broadcast", "kv", "events",
                         "metrics"],
        "conflict_policy": "lww",
        "routing": "dial-map",
        "timing": DECLARED,
        "launch": {"process": {
            "command": command,
            "seed_args": ["--seed", "{seed}"],
            "route_args": ["--route", "{peer}={addr}"],
        }},
    })


@pytest.mark.slow
def test_timing_declared_slower_than_the_profile_is_judged_at_the_profile(
    tmp_path: Path,
) -> None:
    manifest = slow_declaring_manifest(tmp_path / "manifest.yaml")
    code, report, output = certify(manifest, tmp_path / "run")
    # The nodes are the reference, running fast: nothing fails, the run is just partial.
    assert code == 3 and report["verdict"] == "incomplete", output[-3000:]

    judged = judged_timing(DECLARED, DEFAULT_PROFILE)
    capped = report["certificate"]["timing_profile"]["capped"]
    assert set(capped) == {"probe_interval_ms", "suspicion_mult", "gossip_interval_ms"}
    assert set(capped) == set(judged.capped)
    for name, entry in capped.items():
        assert entry["declared"] == DECLARED[name], (name, entry)
        assert entry["ceiling"] == judged.timing[name] < DECLARED[name], (name, entry)
    assert "push_pull_interval_ms" in report["certificate"]["timing_profile"]["defaulted"]
    assert report["run"]["timing"] == judged.timing
    assert "capped by the profile" in (tmp_path / "run" / "report.md").read_text()

    n = len(report["run"]["nodes"])
    assert n == NODES
    catalogue = {r.id: r for r in load_catalogue()}
    from_profile = derived_parameters(judged.timing, n)
    from_declared = derived_parameters(DECLARED, n)
    timed = 0
    for verdict in report["requirements"]:
        requirement = catalogue[verdict["id"]]
        expected = evaluate(requirement.bound, {**from_profile, **requirement.constants})
        assert verdict["bound"] == pytest.approx(expected), verdict
        if requirement.unit == "ms":
            timed += 1
            loose = evaluate(requirement.bound, {**from_declared, **requirement.constants})
            assert verdict["bound"] < loose, (verdict["id"], verdict["bound"], loose)
    assert timed >= 5
