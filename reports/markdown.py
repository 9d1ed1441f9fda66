"""The report for people: ``report.md``, readable in a pull request or a CI summary."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["render_markdown", "write_markdown_report"]

_STATUS_MARK = {"pass": "PASS", "fail": "FAIL", "not-applicable": "n/a", "error": "ERROR"}


def _cell(text: Any) -> str:
    """A value safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value.is_integer():
        return f"{value:.0f}"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _measured_vs_bound(req: Mapping[str, Any]) -> str:
    unit = req.get("unit", "")
    if req.get("measured") is None and req.get("bound") is None:
        return "-"
    if req.get("measured") is None:
        return f"- (bound {_number(req.get('bound'))} {unit})"
    relation = {"pass": "<=", "fail": ">"}.get(str(req.get("status")), "vs")
    return f"{_number(req.get('measured'))} {relation} {_number(req.get('bound'))} {unit}".strip()


def render_markdown(report: Mapping[str, Any]) -> str:
    """The Markdown text of a report dict (as built by :mod:`reports.json_report`)."""
    verdict = str(report.get("verdict", "fail")).upper()
    requirements: Sequence[Mapping[str, Any]] = report.get("requirements", [])
    run: Mapping[str, Any] = report.get("run", {})
    lines = [
        f"# gossipcert report: {report.get('implementation', '?')}",
        "",
        f"**Verdict: {verdict}**"
        + (" (every MUST requirement passed or does not apply)" if verdict == "PASS" else ""),
        "",
        f"- seed: `{report.get('seed')}`",
        f"- nodes: {', '.join(run.get('nodes', [])) or '-'}",
        f"- gossipcert: {run.get('gossipcert_version', '?')}",
    ]
    if report.get("generated_at"):
        lines.append(f"- generated: {report['generated_at']}")
    summary = report.get("summary")
    if summary:
        lines.append("- " + ", ".join(f"{count} {status}" for status, count in summary.items()))
    lines += [
        "",
        "## Requirements",
        "",
        "| id | level | status | measured vs bound | evidence |",
        "|---|---|---|---|---|",
    ]
    for req in requirements:
        evidence = req.get("evidence", {})
        lines.append(
            f"| {_cell(req.get('id'))} | {_cell(req.get('level'))} "
            f"| {_STATUS_MARK.get(str(req.get('status')), _cell(req.get('status')))} "
            f"| {_cell(_measured_vs_bound(req))} | {_cell(evidence.get('summary', ''))} |"
        )
    failing = [r for r in requirements if r.get("status") in ("fail", "error")]
    if failing:
        lines += ["", "## Evidence of failures", ""]
        for req in failing:
            evidence = req.get("evidence", {})
            lines += [
                f"### {req.get('id')} ({req.get('level')}): {req.get('title', '')}",
                "",
                str(evidence.get("summary", "")),
                "",
                "```json",
                json.dumps(evidence.get("details", {}), indent=2, sort_keys=True),
                "```",
                "",
            ]
    faults: Sequence[Mapping[str, Any]] = report.get("faults", [])
    lines += ["", "## Faults applied", ""]
    if not faults:
        lines.append("No fault was applied.")
    else:
        start = min(float(f["time_ms"]) for f in faults)
        lines += ["| t (ms from first fault) | fault | node | args |", "|---|---|---|---|"]
        for fault in faults:
            args = json.dumps(fault.get("args") or {}, sort_keys=True)
            lines.append(
                f"| {float(fault['time_ms']) - start:.0f} | {_cell(fault.get('op'))} "
                f"| {_cell(fault.get('node') or '-')} | `{_cell(args)}` |"
            )
    return "\n".join(lines).rstrip() + "\n"


def write_markdown_report(path: Path | str, report: Mapping[str, Any]) -> str:
    """Write ``report.md`` from a report dict; returns the text written."""
    text = render_markdown(report)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return text
