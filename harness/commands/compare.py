"""``gossipcert compare``: several certification reports (their ``report.json``) side by
side, for a person choosing or auditing implementations.

A matrix 27 requirements wide does not fit a page, so the output is two tables: one row per
implementation (what it is, its verdict, what it was certified for and what kept it from a
certificate), then the requirements down and the implementations across, each cell the
status with the measured value against the bound. Markdown (the compliance run's
``compliance/README.md`` is this command's output) and one self-contained HTML page with
status colours. Links point at each report, relative to the page written.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gossipcert.harness.errors import GossipcertError
from gossipcert.harness.judging.readable import quantity
from gossipcert.harness.judging.verdict import load_catalogue

__all__ = ["Compared", "cell", "compare", "load_compared", "not_certified", "render_html",
           "render_markdown"]

TITLE = "Certification reports compared"
NOT_JUDGED = "not-claimed"


class CompareError(GossipcertError):
    """A directory given to compare holds no readable certification report."""


@dataclass(frozen=True)
class Compared:
    """One report to compare: where it is (``directory``, named by its last part) and what
    it says."""

    directory: Path
    report: Mapping[str, Any]

    @property
    def label(self) -> str:
        return self.directory.resolve().name or str(self.directory)


def load_compared(path: Path) -> Compared:
    """The report of ``path`` (a run directory, or its ``report.json``); a clear error,
    never a traceback, when there is none or it is not a report."""
    file = path if path.name == "report.json" and not path.is_dir() else path / "report.json"
    if not path.exists():
        raise CompareError(f"compare: {path} does not exist")
    if not file.is_file():
        raise CompareError(f"compare: {path} holds no report.json (give the report "
                           "directory of a certify run)")
    try:
        report = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise CompareError(f"compare: cannot read {file}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise CompareError(f"compare: {file} is not valid JSON: {exc}") from None
    if (not isinstance(report, dict) or not isinstance(report.get("requirements"), list)
            or "verdict" not in report
            or not all(isinstance(r, dict) and "id" in r for r in report["requirements"])):
        raise CompareError(f"compare: {file} is not a gossipcert report (no verdict or "
                           "requirements)")
    return Compared(file.parent, report)


def declared_version(report: Mapping[str, Any]) -> str:
    """The version the manifest declared, as the report recorded it."""
    return str((report.get("run") or {}).get("manifest_version") or "?")


def not_certified(report: Mapping[str, Any]) -> list[str]:
    """What kept the certificate short: every requirement that failed or could not be
    judged (in error), then the claimed ones left untested."""
    cert = report.get("certificate") or {}
    out = [f"{r['id']} ({r['status']})" for r in report.get("requirements", [])
           if r.get("status") in ("fail", "error")]
    return out + [f"{rid} (untested)" for rid in cert.get("untested") or []]


def cell(requirement: Mapping[str, Any] | None) -> str:
    """One matrix cell: the status, and the measured value against the bound where the
    requirement has both ("PASS 1.6 s / 13.2 s"); "-" where it was not claimed."""
    if requirement is None or requirement.get("status") == NOT_JUDGED:
        return "-"
    status = str(requirement.get("status", "?")).upper()
    measured, bound = requirement.get("measured"), requirement.get("bound")
    if measured is None:
        return status
    unit = str(requirement.get("unit") or "")
    if bound is None:
        return f"{status} {quantity(measured, unit)}"
    if unit == "count":
        return f"{status} {quantity(measured, unit)} (at most {quantity(bound, unit)})"
    return f"{status} {quantity(measured, unit)} / {quantity(bound, unit)}"


def _judged_ids(compared: Sequence[Compared]) -> list[tuple[str, str]]:
    """Every requirement (id, level) any report judged, in catalogue order (ids the
    catalogue no longer has come last, as the reports give them)."""
    judged: dict[str, str] = {}
    for c in compared:
        for r in c.report["requirements"]:
            if r.get("status") != NOT_JUDGED:
                judged.setdefault(str(r["id"]), str(r.get("level", "")))
    order = [r.id for r in load_catalogue()]
    ids = [i for i in order if i in judged] + [i for i in judged if i not in order]
    return [(i, judged[i]) for i in ids]


def _by_id(c: Compared) -> dict[str, Mapping[str, Any]]:
    return {str(r["id"]): r for r in c.report["requirements"]}


def _how_run(compared: Sequence[Compared]) -> str:
    """How the reports were produced, from their own run records."""
    def one(key: str) -> set[str]:
        values: set[str] = set()
        for c in compared:
            run = c.report.get("run") or {}
            if key == "nodes":
                values.add(str(len(run.get("nodes") or [])))
            elif key == "seed":
                values.add(str(c.report.get("seed", "?")))
            else:
                values.add(str(run.get(key, "?")))
        return values

    nodes, seeds, backends = one("nodes"), one("seed"), one("backend")
    modes = {str((c.report.get("certificate") or {}).get("mode", "?")) for c in compared}
    count = f"{len(compared)} certification{'s' if len(compared) != 1 else ''}"
    if modes == {"suite"}:
        count += (" (each the whole suite of scenarios its claims need)" if len(compared) > 1
                  else " (the whole suite of scenarios its claims need)")
    if len(nodes) == len(seeds) == len(backends) == 1:
        return (f"{count}, run on {nodes.pop()} nodes with seed {seeds.pop()} on the "
                f"{backends.pop()} backend.")
    return f"{count}; their runs differ in cluster size, seed or backend (see each report)."


def _link(target: Path, relative_to: Path | None) -> str:
    return os.path.relpath(target, relative_to) if relative_to is not None else str(target)


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(compared: Sequence[Compared], relative_to: Path | None = None) -> str:
    """The Markdown page: the summary, then requirements down and implementations across
    (links relative to ``relative_to``, the directory the page is written to)."""
    lines = [f"# {TITLE}", "", _how_run(compared) + " Written by `gossipcert compare` from "
             "each directory's report.json.", "",
             "| implementation | version (declared) | backend | verdict | certified "
             "| not certified | report |", "|---|---|---|---|---|---|---|"]
    for c in compared:
        report, run = c.report, c.report.get("run") or {}
        cert = report.get("certificate") or {}
        certified = ", ".join(cert.get("capabilities_certified") or []) or "none"
        lines.append(
            f"| {_md(str(report.get('implementation', '?')))} | {_md(declared_version(report))} "
            f"| {run.get('backend', '?')} | **{str(report['verdict']).upper()}** "
            f"| {certified} | {', '.join(not_certified(report)) or '-'} "
            f"| [{_md(c.label)}]({_link(c.directory / 'report.md', relative_to)}) |")
    judged = _judged_ids(compared)
    lines += ["", "## Requirements", "",
              "Each cell: the status, and the measured value against the bound (worst case "
              "over the scenarios that exercised it); - where the implementation does not "
              "claim the requirement. Only requirements some report judged are listed.", "",
              "| requirement | level | " + " | ".join(_md(c.label) for c in compared) + " |",
              "|---|---|" + "---|" * len(compared)]
    tables = [_by_id(c) for c in compared]
    for rid, level in judged:
        lines.append(f"| {rid} | {level} | "
                     + " | ".join(cell(t.get(rid)) for t in tables) + " |")
    return "\n".join(lines) + "\n"


STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#1f2328}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #d0d7de;padding:.3em .6em;
text-align:left;vertical-align:top}th{background:#f6f8fa}td.c,tr>th:first-child{white-space:nowrap}
.pass{background:#dafbe1}.fail{background:#ffebe9}.untested,.incomplete{background:#fff8c5}
.error{background:#ffd8b5}.not-claimed{color:#8c959f}
"""


def _status_class(requirement: Mapping[str, Any] | None) -> str:
    return "not-claimed" if requirement is None else str(requirement.get("status", ""))


def render_html(compared: Sequence[Compared], relative_to: Path | None = None) -> str:
    """The same two tables as one self-contained HTML page, cells coloured by status."""
    e = html.escape
    out = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{TITLE}</title><style>{STYLE}</style></head><body>",
           f"<h1>{TITLE}</h1>",
           f"<p>{e(_how_run(compared))} Written by <code>gossipcert compare</code> from "
           "each directory's report.json.</p>",
           "<table><tr><th>implementation</th><th>version (declared)</th><th>backend</th>"
           "<th>verdict</th><th>certified</th><th>not certified</th><th>report</th></tr>"]
    for c in compared:
        report, run = c.report, c.report.get("run") or {}
        cert = report.get("certificate") or {}
        verdict = str(report["verdict"])
        link = e(_link(c.directory / "report.html", relative_to))
        out.append(
            f"<tr><td>{e(str(report.get('implementation', '?')))}</td>"
            f"<td>{e(declared_version(report))}</td><td>{e(str(run.get('backend', '?')))}</td>"
            f'<td class="{e(verdict)}"><b>{e(verdict.upper())}</b></td>'
            f"<td>{e(', '.join(cert.get('capabilities_certified') or []) or 'none')}</td>"
            f"<td>{e(', '.join(not_certified(report)) or '-')}</td>"
            f'<td><a href="{link}">{e(c.label)}</a></td></tr>')
    out += ["</table>", "<h2>Requirements</h2>",
            "<p>Each cell: the status, and the measured value against the bound (worst case "
            "over the scenarios that exercised it); - where the implementation does not "
            "claim the requirement.</p>",
            "<table><tr><th>requirement</th><th>level</th>"
            + "".join(f"<th>{e(c.label)}</th>" for c in compared) + "</tr>"]
    tables = [_by_id(c) for c in compared]
    for rid, level in _judged_ids(compared):
        row = f"<tr><th>{e(rid)}</th><td>{e(level)}</td>"
        for t in tables:
            found = t.get(rid)
            row += (f'<td class="c {e(_status_class(found))}" title="{e(rid)}">'
                    f"{e(cell(found))}</td>")
        out.append(row + "</tr>")
    out += ["</table>", "</body></html>"]
    return "\n".join(out) + "\n"


def compare(dirs: Sequence[Path], *, markdown: Path | None = None, html_out: Path | None = None,
            print_line: Callable[..., Any] = print) -> int:
    """The command: read every report first (one bad directory stops it before anything is
    written), then write what was asked; Markdown to stdout when nothing was."""
    compared = [load_compared(d) for d in dirs]
    if markdown is None and html_out is None:
        print_line(render_markdown(compared, Path.cwd()), end="")
        return 0
    for out, render in ((markdown, render_markdown), (html_out, render_html)):
        if out is None:
            continue
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(render(compared, out.parent.resolve()), encoding="utf-8")
        except OSError as exc:
            raise CompareError(f"compare: cannot write {out}: {exc.strerror or exc}") from None
    return 0
