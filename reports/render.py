"""Every report of a run from one place: what certify calls after its run, and what
``gossipcert report DIR`` calls to re-render a run from its history alone."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.errors import EXIT_FAIL, EXIT_PASS, GossipcertError
from harness.history import Entry, load_history
from reports.html import write_html_report
from reports.junit import write_junit_report

__all__ = ["ReportError", "rerender", "write_reports"]


class ReportError(GossipcertError):
    """A run directory cannot be re-rendered (no history, unreadable history)."""


def write_reports(
    report_dir: Path, report: Mapping[str, Any], history: Sequence[Entry]
) -> dict[str, Path]:
    """Write ``report.html`` and ``report.junit.xml`` next to ``report.json``.

    ``report`` is the dict :func:`reports.json_report.write_json_report` returned and
    ``history`` the run's entries. Returns the paths written, by format.
    """
    report_dir.mkdir(parents=True, exist_ok=True)
    return {
        "html": write_html_report(report_dir / "report.html", report, history),
        "junit": write_junit_report(report_dir / "report.junit.xml", report),
    }


def rerender(run_dir: Path, print_line: Callable[[str], None] = print) -> int:
    """Re-check a run's ``history.jsonl`` against the current catalogue and rewrite every
    report; the exit code is the verdict's (0 pass, 1 fail)."""
    from harness.checkers import run_checks
    from harness.verdict import load_catalogue
    from reports.json_report import write_json_report
    from reports.markdown import write_markdown_report

    path = run_dir / "history.jsonl"
    if not path.is_file():
        raise ReportError(f"{run_dir} holds no history.jsonl (is it a run directory?)")
    try:
        history = load_history(path)
    except (OSError, ValueError, KeyError) as exc:
        raise ReportError(f"{path} is not a readable history: {exc}") from None
    meta = next((e for e in history if e.type == "meta"), None)
    if meta is None:
        raise ReportError(f"{path} has no meta entry: not a gossipcert history")
    previous: dict[str, Any] = {}
    if (run_dir / "report.json").is_file():
        try:
            previous = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
        except ValueError:
            previous = {}
    catalogue = load_catalogue()
    verdicts = run_checks(history, catalogue, progress=print_line)
    run_info = dict(previous.get("run") or {})
    run_info.setdefault("nodes", list(meta.args.get("nodes") or []))
    run_info.setdefault("timing", dict(meta.args.get("timing") or {}))
    run_info.setdefault("backend", meta.args.get("backend"))
    run_info["history"] = "history.jsonl"
    run_info.pop("gossipcert_version", None)
    faults = [e for e in history if e.type == "fault"]
    report = write_json_report(
        run_dir / "report.json",
        implementation=str(meta.args.get("implementation") or "unknown"),
        seed=meta.args.get("seed"),
        verdicts=verdicts,
        faults=faults,
        run=run_info,
    )
    write_markdown_report(run_dir / "report.md", report)
    paths = write_reports(run_dir, report, history)
    print_line(f"verdict: {report['verdict'].upper()}")
    print_line(f"report: {paths['html']} (and report.json, report.md, report.junit.xml)")
    return EXIT_PASS if report["verdict"] == "pass" else EXIT_FAIL
