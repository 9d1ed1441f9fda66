"""Reports: the JSON validates against its schema, the Markdown carries the table."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from gossipcert.harness.history import build
from gossipcert.harness.judging.index import HistoryIndex
from gossipcert.harness.judging.verdict import Verdict, overall_verdict
from gossipcert.harness.run.report import build_report, load_report_schema
from gossipcert.reports.json_report import write_json_report
from gossipcert.reports.markdown import render_markdown, write_markdown_report


def verdict(rid: str, status: str, level: str = "MUST", **details: object) -> Verdict:
    return Verdict(
        id=rid,
        level=level,
        title=f"title of {rid}",
        status=status,
        measured=None if status in ("untested", "error") else 1234.5,
        bound=None if status == "error" else 2000.0,
        unit="ms",
        evidence=f"{rid} evidence | with a pipe",
        details=details,
    )


VERDICTS = [
    verdict("MEM-JOIN", "pass"),
    verdict("FD-DETECT", "fail", observer="n2", never=True, at_least_ms=float("inf")),
    verdict("BCAST-DELIVERY", "untested"),
    verdict("KV-LWW", "error"),
]
FAULTS = build(
    [
        {"time_ms": 10000, "type": "fault", "op": "kill", "node": "n3", "args": {"signal": "KILL"}},
        {
            "time_ms": 20000,
            "type": "fault",
            "op": "partition",
            "args": {"groups": [["n1"], ["n2"]]},
        },
        {"time_ms": 25000, "type": "fault", "op": "heal"},
    ]
)
CERT = {
    "contract": "v1",
    "mode": "suite",
    "capabilities_declared": ["membership", "failure-detection", "broadcast", "kv"],
    "capabilities_certified": ["membership"],
    "capabilities_not_claimed": ["crdt", "encryption"],
    "conflict_policies": ["lww"],
    "timing_profile": {"name": "declared", "timing": {"probe_interval_ms": 300}},
    "scenarios": ["default"],
    "untested": ["BCAST-DELIVERY"],
}
RUN = {
    "nodes": ["n1", "n2", "n3"],
    "timing": {"probe_interval_ms": 300},
    "durations": {"total_s": 61.5},
}


def test_overall_verdict_needs_every_claimed_must_exercised() -> None:
    assert overall_verdict([verdict("A", "pass"), verdict("B", "not-claimed")]) == "pass"
    assert overall_verdict([verdict("A", "pass"), verdict("B", "untested")]) == "incomplete"
    assert overall_verdict([verdict("A", "pass"), verdict("B", "error")]) == "incomplete"
    assert overall_verdict([verdict("A", "pass"), verdict("B", "untested", "SHOULD")]) == "pass"
    assert overall_verdict([verdict("A", "pass"), verdict("B", "fail", "SHOULD")]) == "pass"
    assert overall_verdict([verdict("A", "untested"), verdict("B", "fail")]) == "fail"
    assert overall_verdict([]) == "pass"


def test_json_report_validates_and_is_written(tmp_path: Path) -> None:
    path = tmp_path / "out" / "report.json"
    report = build_report(
        implementation="ref",
        seed=42,
        verdicts=VERDICTS,
        faults=FAULTS,
        run=RUN,
        certificate=CERT,
    )
    assert write_json_report(path, report) == path
    on_disk = json.loads(path.read_text())
    assert on_disk == report
    jsonschema.validate(on_disk, load_report_schema())
    assert report["verdict"] == "fail"
    assert report["seed"] == 42
    assert [f["op"] for f in report["faults"]] == ["kill", "partition", "heal"]
    assert report["faults"][0]["node"] == "n3"
    assert report["requirements"][1]["evidence"]["details"]["observer"] == "n2"
    assert report["requirements"][1]["evidence"]["details"]["at_least_ms"] == "inf"
    assert report["run"]["gossipcert_version"]
    assert report["summary"] == {
        "pass": 1,
        "fail": 1,
        "not-claimed": 0,
        "untested": 1,
        "error": 1,
    }
    assert report["certificate"]["capabilities_not_claimed"] == ["crdt", "encryption"]


def test_json_report_accepts_fault_dicts_and_passes_when_musts_pass(tmp_path: Path) -> None:
    faults = [{"time_ms": 5.0, "op": "kill", "node": "n1", "args": {}}]
    verdicts = [verdict("MEM-JOIN", "pass"), verdict("X", "fail", "SHOULD")]
    report = build_report(
        implementation="ref",
        seed=None,
        verdicts=verdicts,
        faults=faults,
        run={},
        certificate=CERT,
    )
    write_json_report(tmp_path / "r.json", report)
    assert report["verdict"] == "pass"


def test_schema_rejects_a_broken_report() -> None:
    report = build_report(
        implementation="ref", seed=1, verdicts=VERDICTS, faults=[], run=RUN, certificate=CERT
    )
    schema = load_report_schema()
    jsonschema.validate(report, schema)
    broken = {**report, "verdict": "maybe"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)
    del broken["verdict"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)
    uncertified = {k: v for k, v in report.items() if k != "certificate"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(uncertified, schema)
    old_status = json.loads(json.dumps(report))
    old_status["requirements"][2]["status"] = "not-applicable"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(old_status, schema)


def test_markdown_has_headline_table_evidence_and_faults(tmp_path: Path) -> None:
    report = build_report(
        implementation="ref", seed=7, verdicts=VERDICTS, faults=FAULTS, run=RUN, certificate=CERT
    )
    path = tmp_path / "report.md"
    text = write_markdown_report(path, report)
    assert path.read_text() == text
    assert "**Verdict: FAIL**" in text
    # Only a PASS is headed "Certificate".
    assert "## Certificate" not in text
    assert text.index("## Not certified: FAIL") < text.index("## Requirements")
    assert "- capabilities certified: membership" in text
    assert "- capabilities not claimed: crdt, encryption" in text
    assert "- untested: BCAST-DELIVERY" in text
    assert "| id | level | scenario | status | measured of bound (margin) | evidence |" in text
    assert "| MEM-JOIN | MUST | - | PASS | 1.2 s of 2.0 s bound (62%) |" in text
    assert "| FD-DETECT | MUST | - | FAIL | 1.2 s of 2.0 s bound (62%) |" in text
    assert "| BCAST-DELIVERY | MUST | - | UNTESTED |" in text
    assert "evidence \\| with a pipe" in text
    assert "## Evidence of failures" in text and "### FD-DETECT" in text
    assert "### KV-LWW" in text  # errors are shown with failures
    assert "### MEM-JOIN" not in text
    assert "## Faults applied" in text
    # No start recorded (RUN has none): counted from the first fault, and it says so.
    assert "Times in seconds from the first fault" in text
    assert "| 0.0 s | kill | n3 |" in text and "| 15.0 s | heal | - |" in text
    # With the run's start, every fault counts from it, in seconds with one decimal.
    started = build_report(implementation="ref", seed=7, verdicts=VERDICTS, faults=FAULTS,
                           run={**RUN, "started_at_ms": 7500.0,
                                "started_at": "1970-01-01T00:00:07.500+00:00"},
                           certificate=CERT)
    text = render_markdown(started)
    assert "Times in seconds from the run's start." in text
    assert "| 2.5 s | kill | n3 |" in text and "| 17.5 s | heal | - |" in text
    assert "- started: 1970-01-01T00:00:07.500+00:00 (7500 epoch ms)" in text


def test_markdown_of_a_passing_run_without_faults() -> None:
    report = build_report(
        implementation="ref",
        seed=7,
        verdicts=[verdict("A", "pass"), verdict("B", "not-claimed")],
        faults=[],
        run={},
        certificate=CERT,
    )
    text = render_markdown(report)
    assert "**Verdict: PASS** (every MUST requirement of the claimed capabilities" in text
    assert "| B |" not in text and "Not claimed (1): B." in text
    assert "No fault was applied." in text
    assert "Evidence of failures" not in text


def test_every_format_says_the_same_verdict_and_statuses(tmp_path: Path) -> None:
    """report.json, report.md, report.html and JUnit agree: INCOMPLETE, and each status."""
    from gossipcert.reports.html import render_html
    from gossipcert.reports.junit import render_junit

    verdicts = [
        verdict("MEM-JOIN", "pass"),
        verdict("MEM-LEAVE", "untested"),
        verdict("KV-MV", "not-claimed"),
        verdict("KV-LWW", "error"),
    ]
    report = build_report(
        implementation="ref", seed=7, verdicts=verdicts, faults=[], run=RUN, certificate=CERT
    )
    assert report["verdict"] == "incomplete"
    markdown = render_markdown(report)
    html = render_html(report, HistoryIndex.build([]))
    junit = render_junit(report)
    assert "**Verdict: INCOMPLETE**" in markdown and "not a certificate" in markdown
    assert "Verdict: INCOMPLETE" in html and "not a certificate" in html
    assert '<property name="verdict" value="incomplete"' in junit
    assert "| MEM-LEAVE | MUST | - | UNTESTED |" in markdown
    assert "Not claimed (1): KV-MV." in markdown
    assert 'class="untested">UNTESTED<' in html and '<span id="KV-MV">KV-MV</span>' in html
    assert 'skipped="2"' in junit and 'errors="1"' in junit
    assert 'message="untested: MEM-LEAVE evidence' in junit
    assert "<h2>Not certified: INCOMPLETE</h2>" in html and "capabilities not claimed" in html
    assert "## Not certified: INCOMPLETE" in markdown
    assert '<property name="certificate.capabilities_not_claimed" value="crdt,encryption"' in junit


def test_a_failed_capability_and_what_was_not_passed_are_named(tmp_path: Path) -> None:
    """A claimed capability with a failed MUST is listed as failed in the certificate, and
    the compliance summary's "not certified" names the requirement that failed before the
    untested ones (it used to name only the untested)."""
    from gossipcert.harness.commands.compare import not_certified

    cert = {**CERT, "capabilities_failed": ["kv"], "untested": ["BCAST-DELIVERY"]}
    report = build_report(
        implementation="ref", seed=7, verdicts=VERDICTS, faults=FAULTS, run=RUN, certificate=cert
    )
    assert "- capabilities failed: kv" in render_markdown(report)
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    failed = [r["id"] for r in report["requirements"] if r["status"] == "fail"]
    row = ", ".join(not_certified(json.loads(path.read_text())))
    assert failed and all(f"{rid} (fail)" in row for rid in failed)
    assert row.index(f"{failed[0]} (fail)") < row.index("BCAST-DELIVERY (untested)")
