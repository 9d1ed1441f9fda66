"""Every report of a run from one place: what certify calls after its run, and what
``gossipcert report DIR`` calls to re-render a run from its history alone."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gossipcert.harness.errors import VERDICT_EXIT, GossipcertError
from gossipcert.harness.history import Entry, load_history
from gossipcert.harness.verdict import Verdict
from gossipcert.reports.html import write_html_report
from gossipcert.reports.json_report import write_json_report
from gossipcert.reports.junit import write_junit_report
from gossipcert.reports.markdown import write_markdown_report

__all__ = ["ReportError", "rerender", "write_reports"]


class ReportError(GossipcertError):
    """A run directory cannot be re-rendered (no history, unreadable history)."""


def write_reports(
    report_dir: Path, report: Mapping[str, Any], history: Sequence[Entry]
) -> dict[str, Path]:
    """Write ``report.md``, ``report.html`` and ``report.junit.xml`` next to
    ``report.json``.

    ``report`` is the dict :func:`reports.json_report.write_json_report` returned and
    ``history`` the run's entries. Returns the paths written, by format.
    """
    report_dir.mkdir(parents=True, exist_ok=True)
    write_markdown_report(report_dir / "report.md", report)
    return {
        "markdown": report_dir / "report.md",
        "html": write_html_report(report_dir / "report.html", report, history),
        "junit": write_junit_report(report_dir / "report.junit.xml", report),
    }


def rerender(run_dir: Path, print_line: Callable[[str], None] = print) -> int:
    """Re-check a run's ``history.jsonl`` (a suite's: every scenario's) against the
    current catalogue and rewrite every report; the exit code is the verdict's."""
    if not (run_dir / "history.jsonl").is_file() and (run_dir / "scenarios").is_dir():
        report = _rerender_suite(run_dir, print_line)
    else:
        report = _rerender_run(run_dir, print_line)[0]
    print_line(f"verdict: {report['verdict'].upper()}")
    print_line(f"report: {run_dir / 'report.html'} (and report.json, report.md, report.junit.xml)")
    return VERDICT_EXIT[str(report["verdict"])]


def _previous(run_dir: Path) -> dict[str, Any]:
    if (run_dir / "report.json").is_file():
        try:
            data = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}
    return {}


def _rerender_run(
    run_dir: Path, print_line: Callable[[str], None]
) -> tuple[dict[str, Any], list[Verdict], list[Entry]]:
    from gossipcert.harness.checkers import run_checks
    from gossipcert.harness.suite import certificate, merge_verdicts
    from gossipcert.harness.verdict import load_catalogue

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
    previous = _previous(run_dir)
    catalogue = load_catalogue()
    verdicts = run_checks(history, catalogue, progress=print_line)
    scenario = str(meta.args.get("scenario") or "default")
    mode = str((previous.get("certificate") or {}).get("mode") or "scenario")
    if mode != "suite":
        verdicts = merge_verdicts(catalogue, [(scenario, verdicts)])
    policy = meta.args.get("conflict_policy")
    policies = list(meta.args.get("conflict_policies") or ([policy] if policy else []))
    timing = dict(meta.args.get("timing") or {})
    run_info = dict(previous.get("run") or {})
    run_info.setdefault("nodes", list(meta.args.get("nodes") or []))
    run_info.setdefault("timing", timing)
    run_info.setdefault("backend", meta.args.get("backend"))
    run_info["history"] = "history.jsonl"
    run_info.pop("gossipcert_version", None)
    faults = [e for e in history if e.type == "fault"]
    cert = certificate(
        catalogue=catalogue,
        verdicts=verdicts,
        capabilities=list(meta.args.get("capabilities") or []),
        policies=policies,
        timing_profile=meta.args.get("timing_profile") or {"name": "declared", "timing": timing},
        scenarios=[scenario],
        mode=mode,
    )
    report = write_json_report(
        run_dir / "report.json",
        implementation=str(meta.args.get("implementation") or "unknown"),
        seed=meta.args.get("seed"),
        verdicts=verdicts,
        faults=faults,
        run=run_info,
        certificate=cert,
    )
    write_reports(run_dir, report, history)
    return report, verdicts, history


def _rerender_suite(run_dir: Path, print_line: Callable[[str], None]) -> dict[str, Any]:
    """Re-render every scenario run of a suite, then the merged report."""
    from gossipcert.harness.suite import certificate, merge_verdicts, run_summary
    from gossipcert.harness.verdict import load_catalogue

    previous = _previous(run_dir)
    listed = [str(r.get("dir")) for r in previous.get("runs") or [] if r.get("dir")]
    dirs = [run_dir / d for d in listed if (run_dir / d).is_dir()] or sorted(
        p for p in (run_dir / "scenarios").iterdir() if (p / "history.jsonl").is_file()
    )
    if not dirs:
        raise ReportError(f"{run_dir}/scenarios holds no scenario run with a history.jsonl")
    catalogue = load_catalogue()
    results = []
    for sub in dirs:
        print_line(f"scenario run {sub.relative_to(run_dir)}")
        results.append((sub, *_rerender_run(sub, print_line)))
    first = results[0][1]
    cert0 = first["certificate"]
    runs = [(str(report["run"].get("scenario") or sub.name), v) for sub, report, v, _ in results]
    verdicts = merge_verdicts(catalogue, runs)
    cert = certificate(
        catalogue=catalogue,
        verdicts=verdicts,
        capabilities=cert0["capabilities_declared"],
        policies=cert0["conflict_policies"],
        timing_profile=cert0["timing_profile"],
        scenarios=[name for name, _ in runs],
        mode="suite",
    )
    run_info = dict(previous.get("run") or first["run"])
    run_info.pop("gossipcert_version", None)
    report = write_json_report(
        run_dir / "report.json",
        implementation=str(first["implementation"]),
        seed=first.get("seed"),
        verdicts=verdicts,
        faults=[],
        run=run_info,
        certificate=cert,
        runs=[
            run_summary(name, report, verdicts, sub.relative_to(run_dir))
            for (sub, report, verdicts, _), (name, _) in zip(results, runs, strict=True)
        ],
    )
    write_reports(run_dir, report, results[0][3])
    return report
