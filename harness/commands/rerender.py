"""``gossipcert report DIR``: re-check a saved run against the current catalogue and
rewrite every report from its ``history.jsonl`` alone.

A suite's directory (no history at its top, one run per scenario under ``scenarios/``)
re-renders every scenario run, then the merged report.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gossipcert.harness.errors import VERDICT_EXIT
from gossipcert.harness.history import Entry, load_history
from gossipcert.harness.judging.index import HistoryIndex
from gossipcert.harness.judging.verdict import Verdict, load_catalogue
from gossipcert.harness.run.pipeline import (
    PublishedRun,
    judge,
    recorded_failure,
    write_reports,
    write_suite_report,
)
from gossipcert.harness.run.reporting import ReportError, report_writers
from gossipcert.harness.run.suite import merge_verdicts

__all__ = ["rerender"]


@dataclass
class _Rerendered:
    run_dir: Path
    report: dict[str, Any]
    verdicts: list[Verdict]
    history: list[Entry]
    index: HistoryIndex


def rerender(run_dir: Path, print_line: Callable[[str], None] = print) -> int:
    """Re-check a run's ``history.jsonl`` (a suite's: every scenario's) against the
    current catalogue and rewrite every report; the exit code is the verdict's."""
    report_writers()  # no writers installed: say so before any work
    if not (run_dir / "history.jsonl").is_file() and (run_dir / "scenarios").is_dir():
        report = _rerender_suite(run_dir, print_line)
    else:
        report = _rerender_run(run_dir, print_line).report
    print_line(f"verdict: {report['verdict'].upper()}")
    print_line(f"report: {run_dir / 'report.html'} "
               "(and report.json, report.md, report.junit.xml, badge.svg)")
    return VERDICT_EXIT[str(report["verdict"])]


def _previous(run_dir: Path) -> dict[str, Any]:
    """The run's earlier report.json (what the history alone does not hold), or {}."""
    if (run_dir / "report.json").is_file():
        try:
            data = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}
    return {}


def _rerender_run(run_dir: Path, print_line: Callable[[str], None]) -> _Rerendered:
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
    failure = recorded_failure(history)
    index, verdicts = judge(history, catalogue, progress=print_line, failure=failure)
    mode = str((previous.get("certificate") or {}).get("mode") or "scenario")
    run_info = dict(previous.get("run") or {})
    run_info.setdefault("nodes", list(meta.args.get("nodes") or []))
    run_info.setdefault("timing", dict(meta.args.get("timing") or {}))
    run_info.setdefault("backend", meta.args.get("backend"))
    run_info["history"] = "history.jsonl"
    run_info.pop("gossipcert_version", None)
    scenario = str(meta.args.get("scenario") or "default")
    harness_error = None
    if failure is not None:
        harness_error = previous.get("harness_error") or {
            "message": str(failure), "scenario": scenario, "kind": type(failure).__name__}
    report = write_reports(run_dir, history, index, verdicts, catalogue=catalogue, mode=mode,
                           run_info=run_info, harness_error=harness_error)
    if mode != "suite":
        verdicts = merge_verdicts(catalogue, [(scenario, verdicts)])
    return _Rerendered(run_dir, report, verdicts, history, index)


def _rerender_suite(run_dir: Path, print_line: Callable[[str], None]) -> dict[str, Any]:
    """Re-render every scenario run of a suite, then the merged report."""
    previous = _previous(run_dir)
    listed = [str(r.get("dir")) for r in previous.get("runs") or [] if r.get("dir")]
    dirs = [run_dir / d for d in listed if (run_dir / d).is_dir()] or sorted(
        p for p in (run_dir / "scenarios").iterdir() if (p / "history.jsonl").is_file()
    )
    if not dirs:
        raise ReportError(f"{run_dir}/scenarios holds no scenario run with a history.jsonl")
    catalogue = load_catalogue()
    results: list[_Rerendered] = []
    for sub in dirs:
        print_line(f"scenario run {sub.relative_to(run_dir)}")
        results.append(_rerender_run(sub, print_line))
    first = results[0]
    run_info = dict(previous.get("run") or first.report["run"])
    run_info.pop("gossipcert_version", None)
    return write_suite_report(
        run_dir,
        [PublishedRun(str(r.report["run"].get("scenario") or r.run_dir.name), r.run_dir,
                      r.report, r.verdicts, r.history, r.index) for r in results],
        catalogue=catalogue, run_info=run_info)
