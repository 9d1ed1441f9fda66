"""Every report of a run, written by plug-ins: :func:`write_all` is what certify and
``gossipcert report DIR`` call.

The harness does not know the report formats. A writer is a callable that takes the
run's :class:`RunResults` and returns the path it wrote; writers are found through the
entry-point group ``gossipcert.reports`` (``reports/`` registers ``json``, ``markdown``,
``html``, ``junit`` and ``badge`` in ``pyproject.toml``). A package of one's own adds a format with
one more entry point::

    [project.entry-points."gossipcert.reports"]
    csv = "mypackage.csv_report:write"

The built-in formats are written first, in that order (JSON first: it validates the
report against its schema); any other follows by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

from gossipcert.harness.errors import GossipcertError
from gossipcert.harness.history import Entry
from gossipcert.harness.judging.index import HistoryIndex

__all__ = [
    "BUILTIN_FORMATS",
    "ENTRY_POINT_GROUP",
    "ReportError",
    "ReportWriter",
    "RunResults",
    "report_writers",
    "write_all",
]

ENTRY_POINT_GROUP = "gossipcert.reports"
BUILTIN_FORMATS = ("json", "markdown", "html", "junit", "badge")


class ReportError(GossipcertError):
    """Reports cannot be written: no writers installed, a writer that fails, or a run
    directory that cannot be re-rendered."""


@dataclass(frozen=True)
class RunResults:
    """What a report writer gets: where reports go, the report as data
    (:func:`harness.run.report.build_report`), and the history with its index, for
    figures (a suite's are its first scenario run's); a suite also gives each scenario
    run's index by scenario name, so a failure is drawn from the run that judged it."""

    report_dir: Path
    report: Mapping[str, Any]
    history: Sequence[Entry]
    index: HistoryIndex
    scenario_indexes: Mapping[str, HistoryIndex] = field(default_factory=dict)


class ReportWriter(Protocol):
    def __call__(self, results: RunResults, /) -> Path:
        """Write one report into ``results.report_dir``; return its path."""
        ...


def _entry_points() -> Sequence[metadata.EntryPoint]:
    return tuple(metadata.entry_points(group=ENTRY_POINT_GROUP))


def report_writers() -> dict[str, ReportWriter]:
    """Every installed writer by format name, in the order they are written.

    :class:`ReportError` when a built-in format is missing (gossipcert is not installed,
    so its entry points do not exist) or a writer cannot be loaded.
    """
    found: dict[str, metadata.EntryPoint] = {}
    for entry_point in _entry_points():
        found.setdefault(entry_point.name, entry_point)
    missing = [name for name in BUILTIN_FORMATS if name not in found]
    if missing:
        raise ReportError(
            f"no report writer for {', '.join(missing)}: the entry points of group "
            f"{ENTRY_POINT_GROUP!r} are missing, so gossipcert is not installed as a "
            "package (from a checkout: pip install -e .)"
        )
    order = list(BUILTIN_FORMATS) + sorted(set(found) - set(BUILTIN_FORMATS))
    writers: dict[str, ReportWriter] = {}
    for name in order:
        entry_point = found[name]
        try:
            writer = entry_point.load()
        except Exception as exc:
            raise ReportError(
                f"report writer {name!r} ({entry_point.value}) cannot be loaded: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if not callable(writer):
            raise ReportError(f"report writer {name!r} ({entry_point.value}) is not callable")
        writers[name] = writer
    return writers


def write_all(
    report_dir: Path,
    report: Mapping[str, Any],
    history: Sequence[Entry],
    index: HistoryIndex | None = None,
    *,
    writers: Mapping[str, ReportWriter] | None = None,
    scenario_indexes: Mapping[str, HistoryIndex] | None = None,
) -> dict[str, Path]:
    """Write every report of a run into ``report_dir``; returns the paths by format.

    ``index`` is ``history``'s (the one the checkers used; built here when not given);
    ``writers`` defaults to :func:`report_writers`; ``scenario_indexes`` (a suite's)
    gives each scenario run's index by scenario name. A writer that fails does not keep
    the others from writing: the failures are raised together afterwards.
    """
    if writers is None:
        writers = report_writers()
    if index is None:
        index = HistoryIndex.build(history)
    report_dir.mkdir(parents=True, exist_ok=True)
    results = RunResults(report_dir, report, history, index, dict(scenario_indexes or {}))
    written: dict[str, Path] = {}
    failures: list[tuple[str, Exception]] = []
    for name, writer in writers.items():
        try:
            written[name] = Path(writer(results))
        except Exception as exc:  # one broken writer must not cost the other reports
            failures.append((name, exc))
    if failures:
        text = "; ".join(f"{name}: {type(exc).__name__}: {exc}" for name, exc in failures)
        raise ReportError(f"report writer(s) failed in {report_dir}: {text}") from failures[0][1]
    return written
