"""The compliance run: certify software we did not write (HashiCorp Serf, Maelstrom nodes)
and our own reference node, keep every report, and summarise them in one table.

Reports go to ``$GOSSIPCERT_COMPLIANCE_DIR`` (CI sets ``build/compliance`` and keeps it),
else to a temporary directory: each run in full under ``runs/<name>/`` (histories, node
logs), and its reports alone, published by :func:`harness.run.publish.publish_report`, in
``<name>/`` (what ``compliance/`` commits: no link in them dangles). Each
implementation's expected outcome is asserted from what the report says, so the run is
also the test that the harness judges third-party software on evidence. The reference
node's run is also the one test of its full suite (every requirement of the catalogue
exercised and passed, the suite's layout), and it is the README's first command run as a
plain user on a fresh clone: no root, no iptables.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gossipcert.harness.commands.cli import main
from gossipcert.harness.commands.compare import compare, load_compared
from gossipcert.harness.run.publish import publish_report
from host_tools import need, serf_missing
from test_certify_e2e import check_full_suite
from test_memberlist import MEMBERLIST, build_memberlist, memberlist_missing
from test_quickstart import fresh_clone, plain_user, quickstart_as_plain_user
from test_report_links import dangling_links
from test_serf import assert_judged_on_evidence, assert_latency_on_the_packet_plane

__all__ = ["fresh_clone", "plain_user"]  # the fixtures of the reference node's run

pytestmark = pytest.mark.slow

NODES = Path(__file__).resolve().parent / "maelstrom_nodes"

# name -> (certify arguments, expected exit code)
RUNS: dict[str, tuple[list[str], int]] = {
    # The README's first command, as a plain user on a fresh clone (no root, no iptables):
    # the reference node gets every fault from the link plane alone.
    "reference": (["--impl", "reference"], 0),
    # Serf: every claimed MUST judged on evidence, FD-NO-FP-LATENCY included (latency from
    # the packet plane: Serf takes no dial map), so PASS unless a MUST fails; two SHOULDs
    # it cannot give evidence for (messages per operation, the traffic floor) are untested.
    "serf": (["--impl", "serf"], 0),
    "maelstrom-broadcast": (["--impl", f"maelstrom:{NODES / 'broadcast_gossip.py'}",
                             "--workload", "broadcast"], 0),
    "maelstrom-g-counter": (["--impl", f"maelstrom:{NODES / 'g_counter.py'}",
                             "--workload", "g-counter"], 0),
    # The default certify, whose suite sends broadcasts while partitions hold: it used to
    # run the default scenario alone and PASS this node, which loses what it sends into a
    # cut link.
    "maelstrom-noretry": (["--impl", f"maelstrom:{NODES / 'broadcast_noretry.py'}",
                           "--workload", "broadcast"], 1),
    # HashiCorp memberlist 0.2.2 (examples/memberlist, built by its build.sh): PASS unless
    # a MUST fails; the FAILs it can show are memberlist's own (MEMBERLIST_FINDINGS).
    "memberlist": (["--impl", str(MEMBERLIST / "manifest.yaml")], 0),
}

# What memberlist alone can fail, each explained in examples/memberlist/README.md: sides of
# a partition that declared each other dead never merge again (memberlist probes, gossips
# and push-pulls only live members; Serf adds reconnects), so their members stay dead,
# then absent; and a fresh cluster's first periodic push-pull comes one random stagger
# plus a whole interval after start, so a rumor lost to datagram loss early on can miss
# the one-interval anti-entropy bound.
MEMBERLIST_FINDINGS = {"PARTITION-HEAL", "FD-NO-FALSE-POSITIVE", "BCAST-DELIVERY"}
# SHOULDs the memberlist node gives no evidence for: it serves no metrics, and the suite's
# quiet phases are shorter than 8 of its 1 s probe periods.
MEMBERLIST_UNTESTED = {"BCAST-MSGS-PER-OP", "TIMING-TRAFFIC"}


# Third-party suites that spend most of their wall time waiting on their own protocol
# timers (Serf's 30 s and memberlist's 15 s push-pull): they run side by side, each in its
# own certify process, so the pair costs the longer one's wall time, not the sum. Their
# nodes are Go programs (and Serf's small bridges), light enough on the CPU that neither
# run's timing is disturbed; the CPU-heavy Python clusters run alone.
SIDE_BY_SIDE = ("serf", "memberlist")
CERTIFY_TIMEOUT_S = 1800
MISSING = {"serf": serf_missing, "memberlist": memberlist_missing}


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("GOSSIPCERT_COMPLIANCE_DIR")
    path = Path(chosen) if chosen else tmp_path_factory.mktemp("compliance")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def side_by_side(out_dir: Path) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """The SIDE_BY_SIDE certify runs, started together the first time one is asked for
    (each one this machine can run: a missing tool skips or fails its own row)."""
    runs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name in SIDE_BY_SIDE:
            if MISSING[name]() is not None:
                continue
            if name == "memberlist":
                build_memberlist()
            shutil.rmtree(_run_dir(out_dir, name), ignore_errors=True)
            log = (out_dir / f"{name}.log").open("wb")
            runs[name] = subprocess.Popen(
                [sys.executable, "-m", "gossipcert.harness.commands.cli", "certify",
                 *RUNS[name][0], "--nodes", "5", "--seed", "2026",
                 "--report-dir", str(_run_dir(out_dir, name))],
                stdout=log, stderr=subprocess.STDOUT)
            log.close()
        yield runs
    finally:
        for proc in runs.values():
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=60)


def _run_dir(out: Path, name: str) -> Path:
    """Where ``name``'s certification runs, in full (``out/<name>`` holds its reports)."""
    return out / "runs" / name


def _certify(name: str, out: Path, request: pytest.FixtureRequest) -> tuple[int, dict[str, Any]]:
    code, report = _run_certify(name, out, request)
    publish_report(_run_dir(out, name), out / name)
    return code, report


def _run_certify(name: str, out: Path, request: pytest.FixtureRequest
                 ) -> tuple[int, dict[str, Any]]:
    if name == "reference":
        code, report, run_dir = quickstart_as_plain_user(
            request.getfixturevalue("plain_user"), request.getfixturevalue("fresh_clone"),
            "--seed", "2026")
        shutil.rmtree(_run_dir(out, name), ignore_errors=True)
        shutil.copytree(run_dir, _run_dir(out, name))
        return code, report
    if name in SIDE_BY_SIDE:
        need(MISSING[name]())
        proc = request.getfixturevalue("side_by_side")[name]
        code = proc.wait(timeout=CERTIFY_TIMEOUT_S)
        report_file = _run_dir(out, name) / "report.json"
        assert report_file.exists(), (out / f"{name}.log").read_text()[-3000:]
        return code, json.loads(report_file.read_text())
    args, _ = RUNS[name]
    code = main(["certify", *args, "--nodes", "5", "--seed", "2026",
                 "--report-dir", str(_run_dir(out, name))])
    return code, json.loads((_run_dir(out, name) / "report.json").read_text())


@pytest.mark.parametrize("name", list(RUNS))
def test_certify(name: str, out_dir: Path, request: pytest.FixtureRequest) -> None:
    code, report = _certify(name, out_dir, request)
    assert dangling_links(out_dir / name) == [], name  # the published reports stand alone
    statuses = {r["id"]: r["status"] for r in report["requirements"]}
    if name == "serf":
        assert_judged_on_evidence(report)
        assert_latency_on_the_packet_plane(report, _run_dir(out_dir, name))
        must_failed = any(r["status"] == "fail" and r["level"] == "MUST"
                          for r in report["requirements"])
        assert code == (1 if must_failed else 0), statuses
        return
    if name == "memberlist":
        assert_memberlist_judged(report)
        must_failed = any(r["status"] == "fail" and r["level"] == "MUST"
                          for r in report["requirements"])
        assert code == (1 if must_failed else 0), statuses
        return
    assert code == RUNS[name][1], statuses
    if name == "reference":
        # The one full suite of the reference node the tests run (the benchmark
        # benchmarks/specificity.py runs it many times over).
        check_full_suite(_run_dir(out_dir, name), report)
    certified = report["certificate"]["capabilities_certified"]
    if name == "maelstrom-broadcast":
        assert statuses["BCAST-DELIVERY"] == "pass" and statuses["BCAST-LATENCY"] == "pass"
        musts = [r["id"] for r in report["requirements"]
                 if r["level"] == "MUST" and r["status"] != "not-claimed"]
        assert musts == ["BCAST-DELIVERY"] and certified == ["broadcast"]
        # Passed also with broadcasts sent while partitions held.
        assert [r["scenario"] for r in report["runs"]] == ["default", "broadcast-partitions"]
    if name == "maelstrom-noretry":
        delivery = next(r for r in report["requirements"] if r["id"] == "BCAST-DELIVERY")
        assert delivery["status"] == "fail" and delivery["scenario"] == "broadcast-partitions"
        assert report["certificate"]["mode"] == "suite"
        never = delivery["evidence"]["details"]["never"]
        assert never and all("deferred_to_heal_ms" in d for d in never)
        assert "after the heal" in delivery["evidence"]["summary"]
    if name == "maelstrom-g-counter":
        assert statuses["CRDT-G-COUNTER"] == "pass"
        for other in ("CRDT-PN-COUNTER", "CRDT-OR-SET", "CRDT-LWW-REGISTER"):
            assert statuses[other] == "not-claimed"
        assert certified == ["crdt"]


def assert_memberlist_judged(report: dict[str, Any]) -> None:
    """Every claimed requirement of memberlist judged on evidence, but two SHOULDs it
    gives none for; a failure only where memberlist itself is known to fall short."""
    for req in report["requirements"]:
        if req["status"] == "not-claimed":
            assert req["id"].split("-")[0] in ("KV", "CRDT"), req["id"]
            continue
        summary = req["evidence"]["summary"]
        if req["id"] in MEMBERLIST_UNTESTED:
            assert req["status"] == "untested" and req["level"] == "SHOULD", (req["id"], summary)
            continue
        assert req["status"] in ("pass", "fail"), (req["id"], req["status"], summary)
        assert req["measured"] is not None and summary, req["id"]
        if req["status"] == "fail":
            assert req["id"] in MEMBERLIST_FINDINGS, (req["id"], summary)


def test_compare(out_dir: Path) -> None:
    """Runs after the certifications (file order): the page `gossipcert compare DIR/*/
    --markdown DIR/README.md` writes (the directories in the shell's order), one summary
    row and one matrix column per kept report."""
    dirs = sorted(p.parent for p in out_dir.glob("*/report.json"))
    assert {d.name for d in dirs} >= set(RUNS)
    assert compare(dirs, markdown=out_dir / "README.md") == 0
    page = (out_dir / "README.md").read_text(encoding="utf-8")
    for d in dirs:
        implementation = load_compared(d).report["implementation"]
        assert f"| {implementation} |" in page and f"]({d.name}/report.md)" in page
