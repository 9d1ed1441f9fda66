"""A report directory's standalone part: what to commit, attach to a release or upload as
a CI artifact, so a reader has every report and nothing that dangles.

A run directory also holds what only the harness reads back (``history.jsonl``,
``schedule.json``, the nodes' logs): large, local, and not linked from any report.
:func:`publish_report` copies the reports alone, a suite's scenario reports included
(the suite's report links to each), into a directory of their own.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from gossipcert.harness.run.reporting import ReportError

__all__ = ["SCENARIO_FILES", "TOP_FILES", "publish_report"]

# The suite's (or single run's) own files: JUnit too, which CI dashboards read.
TOP_FILES = ("report.json", "report.md", "report.html", "report.junit.xml", "badge.svg")
# Each scenario run's: what the suite's report links to, and what those link to.
SCENARIO_FILES = ("report.json", "report.md", "report.html", "badge.svg")


def _copy(src: Path, dst: Path, names: tuple[str, ...]) -> list[Path]:
    dst.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in names:
        if (src / name).is_file():
            shutil.copyfile(src / name, dst / name)
            copied.append(dst / name)
    return copied


def publish_report(run_dir: Path, out_dir: Path) -> list[Path]:
    """Copy ``run_dir``'s reports (and each ``scenarios/<name>/``'s) into ``out_dir``;
    returns the files written. A ``scenarios`` folder already in ``out_dir`` is replaced,
    so a scenario no longer run leaves no stale report behind."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if not (run_dir / "report.json").is_file():
        raise ReportError(f"{run_dir} holds no report.json (is it a report directory?)")
    if out_dir.resolve() == run_dir.resolve():
        raise ReportError(f"publishing {run_dir} into itself: choose another directory")
    copied = _copy(run_dir, out_dir, TOP_FILES)
    shutil.rmtree(out_dir / "scenarios", ignore_errors=True)
    scenarios = run_dir / "scenarios"
    if scenarios.is_dir():
        for sub in sorted(p for p in scenarios.iterdir() if (p / "report.json").is_file()):
            copied += _copy(sub, out_dir / "scenarios" / sub.name, SCENARIO_FILES)
    return copied
