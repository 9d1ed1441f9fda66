"""Reports: the JSON validates against its schema, the Markdown carries the table."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from harness.history import build
from harness.verdict import Verdict, overall_verdict
from reports.json_report import build_report, load_report_schema, write_json_report
from reports.markdown import render_markdown, write_markdown_report


def verdict(rid: str, status: str, level: str = "MUST", **details: object) -> Verdict:
    return Verdict(
        id=rid,
        level=level,
        title=f"title of {rid}",
        status=status,
        measured=None if status in ("not-applicable", "error") else 1234.5,
        bound=None if status == "error" else 2000.0,
        unit="ms",
        evidence=f"{rid} evidence | with a pipe",
        details=details,
    )


VERDICTS = [
    verdict("MEM-JOIN", "pass"),
    verdict("FD-DETECT", "fail", observer="n2", never=True, at_least_ms=float("inf")),
    verdict("BCAST-DELIVERY", "not-applicable"),
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
RUN = {
    "nodes": ["n1", "n2", "n3"],
    "timing": {"probe_interval_ms": 300},
    "durations": {"total_s": 61.5},
}


def test_overall_verdict_gates_on_must_only() -> None:
    assert overall_verdict([verdict("A", "pass"), verdict("B", "not-applicable")]) == "pass"
    assert overall_verdict([verdict("A", "pass"), verdict("B", "fail", "SHOULD")]) == "pass"
    assert overall_verdict([verdict("A", "pass"), verdict("B", "fail")]) == "fail"
    assert overall_verdict([verdict("A", "error")]) == "fail"
    assert overall_verdict([]) == "pass"


def test_json_report_validates_and_is_written(tmp_path: Path) -> None:
    path = tmp_path / "out" / "report.json"
    report = write_json_report(
        path, implementation="ref", seed=42, verdicts=VERDICTS, faults=FAULTS, run=RUN
    )
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
    assert report["summary"] == {"pass": 1, "fail": 1, "not-applicable": 1, "error": 1}


def test_json_report_accepts_fault_dicts_and_passes_when_musts_pass(tmp_path: Path) -> None:
    faults = [{"time_ms": 5.0, "op": "kill", "node": "n1", "args": {}}]
    verdicts = [verdict("MEM-JOIN", "pass"), verdict("X", "fail", "SHOULD")]
    report = write_json_report(
        tmp_path / "r.json",
        implementation="ref",
        seed=None,
        verdicts=verdicts,
        faults=faults,
        run={},
    )
    assert report["verdict"] == "pass"


def test_schema_rejects_a_broken_report() -> None:
    report = build_report(implementation="ref", seed=1, verdicts=VERDICTS, faults=[], run=RUN)
    schema = load_report_schema()
    jsonschema.validate(report, schema)
    broken = {**report, "verdict": "maybe"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)
    del broken["verdict"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_markdown_has_headline_table_evidence_and_faults(tmp_path: Path) -> None:
    report = build_report(implementation="ref", seed=7, verdicts=VERDICTS, faults=FAULTS, run=RUN)
    path = tmp_path / "report.md"
    text = write_markdown_report(path, report)
    assert path.read_text() == text
    assert "**Verdict: FAIL**" in text
    assert "| id | level | status | measured vs bound | evidence |" in text
    assert "| MEM-JOIN | MUST | PASS | 1234.5 <= 2000 ms |" in text
    assert "| FD-DETECT | MUST | FAIL | 1234.5 > 2000 ms |" in text
    assert "evidence \\| with a pipe" in text
    assert "## Evidence of failures" in text and "### FD-DETECT" in text
    assert "### KV-LWW" in text  # errors are shown with failures
    assert "### MEM-JOIN" not in text
    assert "## Faults applied" in text
    assert "| 0 | kill | n3 |" in text and "| 15000 | heal | - |" in text


def test_markdown_of_a_passing_run_without_faults() -> None:
    report = build_report(
        implementation="ref", seed=7, verdicts=[verdict("A", "pass")], faults=[], run={}
    )
    text = render_markdown(report)
    assert "**Verdict: PASS**" in text
    assert "No fault was applied." in text
    assert "Evidence of failures" not in text
