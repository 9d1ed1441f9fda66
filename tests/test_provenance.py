"""Provenance on every report: what ran (the manifest by name and hash, never a local
path; the version the nodes reported), on what (host, backend, fault planes), judged by
which harness (version, commit, contract), from when (the origin of every relative time)
and the command that runs it again."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import sys
from pathlib import Path

import jsonschema
from gossipcert.harness.history import build
from gossipcert.harness.judging.verdict import load_catalogue
from gossipcert.harness.manifest import load_manifest
from gossipcert.harness.profiles import judged_timing
from gossipcert.harness.run.certify import CertifyOptions, certify_command
from gossipcert.harness.run.pipeline import RunSpec, node_ids, publish, skipped_run
from gossipcert.harness.run.report import (
    build_report,
    contract_version,
    history_provenance,
    load_report_schema,
    manifest_label,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_report_links import _simulated_suite  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
EPOCH_MS = re.compile(r"\b1\d{12}(\.\d+)?\b")  # an absolute epoch-ms time in text


def test_a_report_names_its_manifest_without_a_local_path(tmp_path: Path) -> None:
    reference = load_manifest("reference")
    spec = RunSpec(backend="process", nodes=tuple(node_ids(3)), seed=1,
                   timing=judged_timing(reference.declared_timing).timing, ops=(),
                   scenario="default", catalogue=tuple(load_catalogue()), manifest=reference)
    report = publish(skipped_run(spec, "no reason"), tmp_path, mode="scenario",
                     run_extra={"skipped": "no reason"})
    run = report["run"]
    assert run["manifest"] == "reference_node/manifest.yaml"
    assert run["manifest_sha256"] == hashlib.sha256(reference.path.read_bytes()).hexdigest()
    assert run["contract_version"] == contract_version() != "unknown"
    assert run["host"]["cores"] and run["host"]["kernel"]
    assert run["gossipcert_commit"] is None or re.fullmatch(r"[0-9a-f]{40}",
                                                            run["gossipcert_commit"])
    assert str(REPO) not in (tmp_path / "report.json").read_text()
    jsonschema.validate(report, load_report_schema())
    text = (tmp_path / "report.md").read_text()
    assert "## Run" in text and f"sha256 {run['manifest_sha256']}" in text
    # An older report's absolute path is turned into a name when it is rendered again.
    old = build_report(implementation="x", seed=1, verdicts=[], faults=[],
                       run={"manifest": "/home/someone/impl/manifest.yaml"},
                       certificate={"timing_profile": {"name": "lan"}})
    assert old["run"]["manifest"] == "impl/manifest.yaml"
    assert manifest_label(REPO / "adapters" / "serf" / "manifest.yaml") == \
        "adapters/serf/manifest.yaml"


def test_the_history_gives_the_start_the_reported_version_and_the_planes() -> None:
    history = build([
        {"time_ms": 1_000.0, "type": "meta", "op": "run", "args": {}},
        {"time_ms": 1_200.0, "type": "ok", "op": "start", "node": "n1", "call": 1,
         "result": {"version": "2.1.0"}},
        {"time_ms": 5_000.0, "type": "fault", "op": "kill", "node": "n1"},
        {"time_ms": 6_000.0, "type": "fault", "op": "partition",
         "args": {"plane": "link", "groups": [["n1"], ["n2"]]}},
    ])
    found = history_provenance(history)
    assert found["started_at_ms"] == 1_000.0
    assert found["started_at"] == "1970-01-01T00:00:01.000+00:00"
    assert found["implementation_version"] == "2.1.0"
    assert found["fault_planes"] == ["link", "process"]


def test_the_command_runs_the_same_certification() -> None:
    opts = CertifyOptions(impl=str(REPO / "tests" / "impls" / "heartbeat" / "manifest.yaml"),
                          nodes=4, scenario="partitions", profile="local",
                          quiet_s=2.0)
    command = shlex.split(certify_command(opts, 42))
    assert command[:2] == ["gossipcert", "certify"]
    impl = command[command.index("--impl") + 1]
    assert not Path(impl).is_absolute() and (Path.cwd() / impl).resolve() == Path(opts.impl)
    for flag, value in (("--nodes", "4"), ("--seed", "42"), ("--scenario", "partitions"),
                        ("--profile", "local"), ("--quiet-s", "2")):
        assert command[command.index(flag) + 1] == value
    assert "--report-dir" not in command and "--backend" not in command
    maelstrom = certify_command(CertifyOptions(impl=f"maelstrom:g-counter:{REPO}/x.py"), 1)
    assert "--impl maelstrom:g-counter:" in maelstrom and str(REPO) not in maelstrom


def test_evidence_and_tables_count_seconds_from_the_start(tmp_path: Path) -> None:
    """No summary, table or fault row a person reads prints an absolute epoch-ms time
    (the simulator's clock starts at 10^12 ms); ``details`` keep absolute times."""
    report = _simulated_suite(tmp_path)
    for req in report["requirements"]:
        assert not EPOCH_MS.search(req["evidence"]["summary"]), req["evidence"]["summary"]
    for path in [tmp_path / "report.md", *tmp_path.glob("scenarios/*/report.md")]:
        text = path.read_text()
        table = text.split("## Requirements")[1].split("\n## ")[0]
        faults = text.split("## Faults applied")[1]
        assert "| " in table and "| " in faults
        assert not EPOCH_MS.search(table) and not EPOCH_MS.search(faults), path
    assert json.loads((tmp_path / "report.json").read_text())["faults"][0]["time_ms"] > 1e12


def test_the_timing_profile_line_says_what_was_judged_and_where_each_value_came_from() -> None:
    """A manifest whose timing is profile ``local``'s values, judged against ``lan``:
    the certificate names the profile judged at and the manifest's own, and marks each
    value declared, capped at the ceiling, raised to the floor or filled in."""
    from gossipcert.reports.markdown import certificate_lines

    judged = judged_timing({"probe_interval_ms": 2000.0, "probe_timeout_ms": 200.0,
                            "gossip_interval_ms": 1.0}, "lan")
    report = {"certificate": {"timing_profile": judged.describe()},
              "run": {"manifest_timing_profile": "local"}}
    lines = dict(certificate_lines(report))
    assert lines["timing profile"] == ("judged against profile lan (its values are "
                                       "ceilings); the manifest's own timing is profile "
                                       "local's values")
    values = lines["timing judged at"]
    assert "probe_interval_ms=1000 (lan ceiling)" in values
    assert "probe_timeout_ms=200 (declared)" in values
    assert "gossip_interval_ms=10 (floor)" in values
    assert "suspicion_mult=4 (lan, not declared)" in values
    assert "lan:" not in " ".join(lines.values())


def test_a_maelstrom_node_is_named_and_hashed_by_its_binary() -> None:
    """A Maelstrom node runs under one shared manifest: the report names and hashes the
    node's binary too, without a local path."""
    from gossipcert.harness.run.pipeline import manifest_info

    node = REPO / "tests" / "maelstrom_nodes" / "g_counter.py"
    info = manifest_info(load_manifest(f"maelstrom:g-counter:{node}"))
    assert info["manifest"] == "adapters/maelstrom/manifest.yaml"
    assert info["implementation_file"] == "tests/maelstrom_nodes/g_counter.py"
    assert info["implementation_sha256"] == hashlib.sha256(node.read_bytes()).hexdigest()
