"""``report.html``: one self-contained page (inline CSS and SVG, no script, nothing
fetched) with the verdict table and the figures a person would rather see than read."""

from __future__ import annotations

import json
from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import Any

from gossipcert.harness.judging.index import HistoryIndex
from gossipcert.harness.run.reporting import RunResults
from gossipcert.reports.badge import render_badge
from gossipcert.reports.markdown import (
    VERDICT_MEANING,
    certificate_heading,
    certificate_lines,
    fault_rows,
    harness_error_text,
    judged_text,
    margin_text,
    not_claimed_ids,
    preflight_lines,
    run_lines,
    run_started,
)
from gossipcert.reports.plots import (
    broadcast_spread_svg,
    fault_timeline_svg,
    latency_histogram_svg,
    member_views_svg,
)
from gossipcert.reports.timeline import failure_evidence_html, overview_figures

__all__ = ["render_html", "write", "write_html_report"]

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222}
h1{font-size:22px}h2{font-size:18px;margin-top:32px}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ddd;padding:4px 8px;
vertical-align:top;text-align:left}th{background:#f4f4f4}
.pass{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:600}
.error{color:#9a6700;font-weight:600}.not-claimed{color:#777}
.untested{color:#9a6700}.incomplete{color:#9a6700;font-weight:600}
.verdict{font-size:20px;padding:8px 12px;display:inline-block;border-radius:4px}
.verdict.pass{background:#dafbe1}.verdict.fail{background:#ffebe9}
.verdict.incomplete{background:#fff8c5}.verdict.error{background:#eaeef2}
.harness-error{border-left:4px solid #6e7781;padding:4px 10px;background:#f6f8fa}
table.cert{width:auto}table.cert th{width:200px}
details pre{max-height:240px;overflow:auto;background:#f6f8fa;padding:6px;font-size:12px}
svg{background:#fff;border:1px solid #eee;margin:8px 0;max-width:100%;height:auto}
svg text{font:11px system-ui,sans-serif}svg .title{font-size:13px;font-weight:600}
svg .axis{stroke:#333}svg .tick{fill:#555}svg .small{font-size:10px;fill:#222}
figure{margin:0}figcaption{color:#555;font-size:13px}
"""


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.0f}" if value.is_integer() or abs(value) >= 100 else f"{value:.2f}"
    return str(value)


def _row(req: Mapping[str, Any]) -> str:
    details = json.dumps(req["evidence"]["details"], indent=2, sort_keys=True, default=str)
    status = str(req["status"])
    return (
        f'<tr id="{escape(req["id"])}"><td><b>{escape(req["id"])}</b><br>'
        f"<small>{escape(req['title'])}</small></td>"
        f"<td>{escape(req['level'])}</td><td>{escape(str(req.get('scenario') or '-'))}</td>"
        f'<td class="{escape(status)}">{escape(status.upper())}</td>'
        f"<td>{escape(margin_text(req))}</td>"
        f"<td>{escape(req['evidence']['summary'])}"
        f"<details><summary>evidence</summary><pre>{escape(details)}</pre></details></td></tr>"
    )


def _figure(svg: str | None, caption: str) -> str:
    if svg is None:
        return f'<p class="not-claimed">{escape(caption)}: nothing to draw in this run.</p>'
    return f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>"


def render_html(
    report: Mapping[str, Any],
    index: HistoryIndex,
    scenario_indexes: Mapping[str, HistoryIndex] | None = None,
) -> str:
    """The page; its figures are drawn from ``index`` (the history the checkers judged),
    a failing requirement's from its own scenario run's (``scenario_indexes``)."""
    verdict = str(report.get("verdict", "fail"))
    rows = "".join(_row(r) for r in report.get("requirements", [])
                   if r.get("status") != "not-claimed")
    unclaimed = not_claimed_ids(report)
    # One line, each id still an anchor (#ID links to a requirement whatever its status).
    unclaimed_html = (f'<p class="not-claimed">Not claimed ({len(unclaimed)}): '
                      + ", ".join(f'<span id="{escape(i)}">{escape(i)}</span>' for i in unclaimed)
                      + ".</p>" if unclaimed else "")
    figures = [
        _figure(
            broadcast_spread_svg(index),
            "Fraction of members holding each broadcast (node-side receive times) against "
            "Serf's model I(r)/n = 1/(1+(n+1)e^(-bnr)), b = f/(2n), one round per gossip "
            "interval.",
        ),
        _figure(latency_histogram_svg(index), "Dissemination latency of every delivery."),
        _figure(
            member_views_svg(index),
            "Each member's status for the killed node over time; shaded: partition windows.",
        ),
        _figure(fault_timeline_svg(index), "Fault schedule and workload phases."),
        *overview_figures(index),
    ]
    cert_rows = "".join(
        f"<tr><th>{escape(label)}</th><td>{escape(text)}</td></tr>"
        for label, text in certificate_lines(report)
    )
    runs = "".join(
        f"<tr><td>{escape(str(r.get('scenario')))}</td><td>{escape(run_started(r))}</td>"
        f"<td>{escape(str(r.get('conflict_policy') or '-'))}</td>"
        f"<td>{escape(judged_text(r))}</td><td>{_number(r.get('wall_time_s'))}</td>"
        f'<td><a href="{escape(str(r.get("dir")))}/report.html">{escape(str(r.get("dir")))}</a>'
        "</td></tr>"
        for r in report.get("runs") or []
    )
    runs_html = (
        "<h2>Scenario runs</h2><p>A time in a requirement's evidence counts from the start "
        "of the scenario run that judged it.</p><table><thead><tr><th>scenario</th>"
        "<th>started</th><th>policy</th>"
        f"<th>judged</th><th>wall s</th><th>report</th></tr></thead><tbody>{runs}</tbody>"
        "</table><p>Each failure's figures are from the scenario run that judged it; "
        "the figures below are from the first scenario run.</p>"
        if runs
        else ""
    )
    fault_list, exact = fault_rows(report)
    scenario_col = bool(report.get("runs"))
    faults = "".join(
        "<tr>" + (f"<td>{escape(f['scenario'])}</td>" if scenario_col else "")
        + f"<td>{escape(f['at'])}</td><td>{escape(f['op'])}</td>"
        f"<td>{escape(f['node'])}</td><td>{escape(f['by'])}</td>"
        f"<td><code>{escape(f['args'])}</code></td></tr>"
        for f in fault_list
    )
    origin = (("its scenario run's start" if scenario_col else "the run's start") if exact
              else "the first fault (this report does not record its run's start)")
    run_rows = "".join(
        f"<tr><th>{escape(label)}</th><td>"
        + (f"<code>{escape(text)}</code>" if label == "reproduce" else escape(text))
        + "</td></tr>"
        for label, text in run_lines(report)
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>gossipcert report: {escape(str(report.get("implementation")))}</title>
<style>{_CSS}</style></head><body>
<h1>gossipcert report: {escape(str(report.get("implementation")))}</h1>
<p><span class="verdict {escape(verdict)}">Verdict: {escape(verdict.upper())}</span>
{escape(VERDICT_MEANING.get(verdict, ""))}</p>
<p class="badge"><a href="badge.svg">{render_badge(report).strip()}</a>
the badge, <a href="badge.svg">badge.svg</a> beside this report, for a README or a CI page</p>
{_harness_error_html(report)}{_preflight_html(report)}<h2>{escape(certificate_heading(report))}</h2>
<table class="cert"><tbody>{cert_rows}</tbody></table>
{failure_evidence_html(report, index, scenario_indexes)}<h2>Run</h2>
<table class="cert"><tbody>{run_rows}</tbody></table>
<h2>Requirements</h2>
<table><thead><tr><th>requirement</th><th>level</th><th>scenario</th><th>status</th>
<th>measured of bound (margin)</th><th>evidence</th></tr></thead><tbody>{rows}</tbody></table>
{unclaimed_html}
{runs_html}
<h2>Figures</h2>
{"".join(figures)}
<h2>Faults</h2>
<p>Times in seconds from {escape(origin)}.</p>
<table><thead><tr>{"<th>scenario</th>" if scenario_col else ""}<th>t</th><th>fault</th>
<th>node</th><th>by</th><th>args</th></tr></thead>
<tbody>{faults or '<tr><td colspan="6">none</td></tr>'}</tbody></table>
</body></html>
"""


def write_html_report(
    path: Path | str,
    report: Mapping[str, Any],
    index: HistoryIndex,
    scenario_indexes: Mapping[str, HistoryIndex] | None = None,
) -> Path:
    target = Path(path)
    target.write_text(render_html(report, index, scenario_indexes), encoding="utf-8")
    return target


def write(results: RunResults) -> Path:
    """The ``html`` report writer (entry point of ``gossipcert.reports``)."""
    return write_html_report(
        results.report_dir / "report.html", results.report, results.index,
        results.scenario_indexes,
    )


def _harness_error_html(report: Mapping[str, Any]) -> str:
    text = harness_error_text(report)
    return "" if text is None else f'<p class="harness-error">{escape(text)}</p>\n'


def _preflight_html(report: Mapping[str, Any]) -> str:
    lines = preflight_lines(report)
    if not lines:
        return ""
    items = "".join(f"<li>{escape(line)}</li>" for line in lines)
    return f"<h2>Not available on this machine</h2><ul>{items}</ul>\n"
