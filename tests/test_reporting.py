"""Report writers are plug-ins: ``write_all`` finds them through the ``gossipcert.reports``
entry points, writes the built-in four in a fixed order, calls any other one registered,
and says clearly when none is installed."""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from gossipcert.harness.commands.cli import main
from gossipcert.harness.history import Entry
from gossipcert.harness.judging.index import HistoryIndex
from gossipcert.harness.judging.verdict import load_catalogue
from gossipcert.harness.run import reporting
from gossipcert.harness.run.report import build_report, load_report_schema
from gossipcert.harness.run.reporting import (
    BUILTIN_FORMATS,
    ENTRY_POINT_GROUP,
    ReportError,
    RunResults,
    report_writers,
    write_all,
)
from gossipcert.harness.run.suite import certificate
from gossipcert.harness.workloads.capabilities import run_checks
from gossipcert.reports import badge, html, json_report, junit, markdown
from test_checkers import ALL_CAPS, formed

FILES = {
    "json": "report.json",
    "markdown": "report.md",
    "html": "report.html",
    "junit": "report.junit.xml",
    "badge": "badge.svg",
}
SEEN: list[RunResults] = []


def extra_writer(results: RunResults) -> Path:
    """A writer of one's own: a one-line summary, with a figure from the index."""
    SEEN.append(results)
    path = results.report_dir / "report.txt"
    path.write_text(f"{results.report['verdict']} over {len(results.index.nodes)} nodes\n")
    return path


def broken_writer(results: RunResults) -> Path:
    raise RuntimeError("disk full")


def plugin(name: str, function: str) -> metadata.EntryPoint:
    return metadata.EntryPoint(name=name, value=f"{__name__}:{function}", group=ENTRY_POINT_GROUP)


def with_entry_points(
    monkeypatch: pytest.MonkeyPatch, extra: Sequence[metadata.EntryPoint] = (),
    keep: Sequence[str] = BUILTIN_FORMATS,
) -> None:
    installed = [ep for ep in reporting._entry_points() if ep.name in keep]
    monkeypatch.setattr(reporting, "_entry_points", lambda: (*installed, *extra))


def synthetic_run() -> tuple[list[Entry], dict[str, Any]]:
    """A three-node history (joined, one broadcast, n3 killed) and its report."""
    h = formed().op("broadcast", "n1", 2000, 2005, args={"id": "b1", "payload": 1})
    h.delivered("n2", "b1", 2100).delivered("n3", "b1", 2200).fault("kill", 3000, "n3")
    for observer in ("n1", "n2"):
        h.member(observer, "n3", "dead", 6000)
    history = h.until(30_000).build()
    catalogue = load_catalogue()
    verdicts = run_checks(history, catalogue)
    report = build_report(
        implementation="synthetic", seed=1, verdicts=verdicts,
        faults=[e for e in history if e.type == "fault"], run={"nodes": ["n1", "n2", "n3"]},
        certificate=certificate(
            catalogue=catalogue, verdicts=verdicts, capabilities=ALL_CAPS, policies=["lww"],
            timing_profile={"name": "declared", "timing": {}}, scenarios=["synthetic"],
            mode="scenario",
        ),
    )
    return history, report


def test_the_builtin_writers_come_from_the_entry_points_in_order() -> None:
    writers = report_writers()
    assert list(writers)[:5] == ["json", "markdown", "html", "junit", "badge"]
    assert writers["json"] is json_report.write
    assert writers["markdown"] is markdown.write
    assert writers["html"] is html.write
    assert writers["junit"] is junit.write
    assert writers["badge"] is badge.write


def test_write_all_calls_a_writer_registered_beside_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_entry_points(monkeypatch, [plugin("text", "extra_writer")])
    history, report = synthetic_run()
    index = HistoryIndex.build(history)
    SEEN.clear()
    written = write_all(tmp_path, report, history, index)
    assert list(written) == [*BUILTIN_FORMATS, "text"]
    for name, file in FILES.items():
        assert written[name] == tmp_path / file and written[name].is_file(), name
    assert (tmp_path / "report.txt").read_text() == f"{report['verdict']} over 3 nodes\n"
    (results,) = SEEN
    assert results.index is index and results.history is history  # the checkers' own
    jsonschema.validate(json.loads((tmp_path / "report.json").read_text()), load_report_schema())
    assert 'data-figure="member-views"' in (tmp_path / "report.html").read_text()


def test_missing_writers_are_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without the package's entry points (a checkout never installed), certify and the
    report command say what is missing and how to get it: exit 2, no traceback."""
    with_entry_points(monkeypatch, keep=["json"])
    with pytest.raises(ReportError, match=r"markdown, html, junit, badge.*pip install -e \."):
        report_writers()
    history, _ = synthetic_run()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "history.jsonl").write_text("".join(e.to_json() + "\n" for e in history))
    assert main(["report", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gossipcert: error: no report writer for markdown, html, junit, badge")
    assert "Traceback" not in err
    assert main(["certify", "--report-dir", str(tmp_path / "certify")]) == 2
    assert "no report writer" in capsys.readouterr().err
    assert not (tmp_path / "certify").exists()  # nothing started, nothing written


def test_a_failing_writer_costs_no_other_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_entry_points(monkeypatch, [plugin("broken", "broken_writer")])
    history, report = synthetic_run()
    with pytest.raises(ReportError, match="broken: RuntimeError: disk full"):
        write_all(tmp_path, report, history)
    assert all((tmp_path / file).is_file() for file in FILES.values())


def test_a_writer_that_cannot_be_loaded_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    with_entry_points(monkeypatch, [plugin("ghost", "no_such_writer")])
    with pytest.raises(ReportError, match="report writer 'ghost'.*cannot be loaded"):
        report_writers()


def test_report_command_rewrites_every_report_from_the_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history, _ = synthetic_run()
    (tmp_path / "history.jsonl").write_text("".join(e.to_json() + "\n" for e in history))
    code = main(["report", str(tmp_path)])
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "report.json").read_text())
    assert code == {"pass": 0, "fail": 1, "incomplete": 3}[report["verdict"]]
    assert f"verdict: {report['verdict'].upper()}" in out and "checked 1/" in out
    assert all((tmp_path / file).is_file() for file in FILES.values())
    statuses = {r["id"]: r["status"] for r in report["requirements"]}
    assert statuses["MEM-JOIN"] == statuses["FD-DETECT"] == statuses["BCAST-DELIVERY"] == "pass"
