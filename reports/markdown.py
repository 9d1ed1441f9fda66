"""The report for people: ``report.md``, readable in a pull request or a CI summary."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gossipcert.harness.run.report import preflight_lines
from gossipcert.harness.run.reporting import RunResults

__all__ = [
    "VERDICT_MEANING",
    "certificate_lines",
    "harness_error_text",
    "judged_text",
    "preflight_lines",
    "render_markdown",
    "write",
    "write_markdown_report",
]

_STATUS_MARK = {
    "pass": "PASS",
    "fail": "FAIL",
    "not-claimed": "not claimed",
    "untested": "UNTESTED",
    "error": "ERROR",
}

# What each overall verdict means, as every report words it.
VERDICT_MEANING = {
    "pass": "every MUST requirement of the claimed capabilities was exercised and passed",
    "fail": "at least one MUST requirement failed",
    "incomplete": "no MUST requirement failed, but at least one claimed MUST requirement "
    "was not exercised or could not be judged: this is not a certificate",
    "error": "the harness's own parts failed mid-run: this partial report says nothing about "
    "the implementation and certifies nothing",
}


def harness_error_text(report: Mapping[str, Any]) -> str | None:
    """What cut the run short, when the harness failed (``harness_error``), else None."""
    failure = report.get("harness_error")
    if not isinstance(failure, Mapping):
        return None
    return f"harness error in scenario {failure.get('scenario', '?')}: {failure.get('message')}"


def judged_text(run: Mapping[str, Any]) -> str:
    """What one scenario run of a suite judged, in a few words."""
    if run.get("skipped"):
        return f"skipped: {run['skipped']}"
    judged = run.get("judged") or {}
    return (
        f"{judged.get('pass', 0)} passed, {judged.get('fail', 0)} failed, "
        f"{judged.get('error', 0)} not judged"
    )


def certificate_heading(report: Mapping[str, Any]) -> str:
    """The certificate's heading, by verdict: only a PASS is a certificate."""
    verdict = str(report.get("verdict", "?"))
    return "Certificate" if verdict == "pass" else f"Not certified: {verdict.upper()}"


def certificate_lines(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The certificate as (label, text) pairs, shared by the Markdown and HTML reports."""
    cert: Mapping[str, Any] = report.get("certificate") or {}
    timing = (cert.get("timing_profile") or {}).get("timing") or {}
    untested = list(cert.get("untested") or [])
    return [
        ("contract", str(cert.get("contract", "?"))),
        ("capabilities certified", ", ".join(cert.get("capabilities_certified") or []) or "none"),
        *([("capabilities failed", ", ".join(cert["capabilities_failed"]))]
          if cert.get("capabilities_failed") else []),
        *([("capabilities not judged (a MUST untested or in error)",
            ", ".join(cert["capabilities_not_judged"]))]
          if cert.get("capabilities_not_judged") else []),
        (
            "capabilities not claimed",
            ", ".join(cert.get("capabilities_not_claimed") or []) or "none",
        ),
        ("conflict policies", ", ".join(cert.get("conflict_policies") or []) or "-"),
        (
            "timing profile",
            f"{(cert.get('timing_profile') or {}).get('name', '?')}: "
            + (", ".join(f"{k}={_number(v)}" for k, v in sorted(timing.items())) or "-"),
        ),
        *_profile_lines(cert.get("timing_profile") or {}),
        ("scenarios run", f"{', '.join(cert.get('scenarios') or [])} ({cert.get('mode', '?')})"),
        ("untested", ", ".join(untested) if untested else "none"),
    ]


def _profile_lines(profile: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What the timing profile changed: declared timing it capped, raised to a floor or
    filled in."""
    lines = []
    for key, label, judged in (("capped", "capped by the profile", "ceiling"),
                               ("floored", "raised to the floor", "floor")):
        changed = profile.get(key) or {}
        if changed:
            lines.append((label, "; ".join(
                f"{k} declared {_number(v.get('declared'))}, judged at {_number(v.get(judged))}"
                for k, v in sorted(changed.items())
            )))
    if profile.get("defaulted"):
        lines.append(("not declared (profile value)", ", ".join(profile["defaulted"])))
    return lines


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
    meaning = VERDICT_MEANING.get(str(report.get("verdict")), "")
    lines = [
        f"# gossipcert report: {report.get('implementation', '?')}",
        "",
        f"**Verdict: {verdict}**" + (f" ({meaning})" if meaning else ""),
        "",
        f"![gossipcert {verdict}](badge.svg) (`badge.svg` beside this report, for a README "
        "or a CI page)",
        "",
        *([f"> {_cell(harness_error_text(report) or '')}", ""]
          if harness_error_text(report) else []),
        *(["## Not available on this machine", "",
           *[f"- {_cell(line)}" for line in preflight_lines(report)], ""]
          if preflight_lines(report) else []),
        f"## {certificate_heading(report)}",
        "",
    ]
    lines += [f"- {label}: {_cell(text)}" for label, text in certificate_lines(report)]
    lines += [
        "",
        "## Run",
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
    runs: Sequence[Mapping[str, Any]] = report.get("runs") or []
    if runs:
        lines += [
            "",
            "## Scenario runs",
            "",
            "| scenario | policy | judged | wall s | report |",
            "|---|---|---|---|---|",
        ]
        for r in runs:
            lines.append(
                f"| {_cell(r.get('scenario'))} | {_cell(r.get('conflict_policy') or '-')} "
                f"| {_cell(judged_text(r))} "
                f"| {_number(r.get('wall_time_s'))} | [{_cell(r.get('dir'))}]"
                f"({_cell(r.get('dir'))}/report.md) |"
            )
    lines += [
        "",
        "## Requirements",
        "",
        "| id | level | scenario | status | measured vs bound | evidence |",
        "|---|---|---|---|---|---|",
    ]
    for req in requirements:
        evidence = req.get("evidence", {})
        lines.append(
            f"| {_cell(req.get('id'))} | {_cell(req.get('level'))} "
            f"| {_cell(req.get('scenario') or '-')} "
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
    if not faults and runs:
        lines.append("Each scenario's report lists the faults applied in its run.")
    elif not faults:
        lines.append("No fault was applied.")
    else:
        start = min(float(f["time_ms"]) for f in faults)
        lines += ["| t (ms from first fault) | fault | node | by | args |",
                  "|---|---|---|---|---|"]
        for fault in faults:
            fault_args = dict(fault.get("args") or {})
            by = fault_args.pop("mechanism", None) or "-"  # toxiproxy, iptables, nfqueue, netem
            args = json.dumps(fault_args, sort_keys=True)
            lines.append(
                f"| {float(fault['time_ms']) - start:.0f} | {_cell(fault.get('op'))} "
                f"| {_cell(fault.get('node') or '-')} | {_cell(by)} | `{_cell(args)}` |"
            )
    exploration = (report.get("run") or {}).get("exploration")
    if isinstance(exploration, Mapping):
        lines += exploration_lines(exploration)
    return "\n".join(lines).rstrip() + "\n"


def _confirmation(exploration: Mapping[str, Any]) -> str:
    runs, aside = exploration.get("confirm_runs", 0), exploration.get("unconfirmed", 0)
    if not runs:
        return ""
    return (f"{runs} {'run' if runs == 1 else 'runs'} again to confirm the failure kept "
            f"({aside} {'failure' if aside == 1 else 'failures'} set aside: "
            f"{'it' if aside == 1 else 'they'} did not fail again), ")


def exploration_lines(exploration: Mapping[str, Any]) -> list[str]:
    """What ``gossipcert explore`` found (the report's ``run.exploration``): the outcome,
    the search's figures, and the smallest failing sequence with how to replay it."""
    exercised = exploration.get("exercised") or {}
    lines = ["", "## Exploration", "", str(exploration.get("summary", "")), "",
             f"- seed {exploration.get('seed')}, budget {exploration['budget_s']:.0f} s, "
             f"{exploration['elapsed_s']:.0f} s spent",
             f"- {exploration['examples']} examples, {exploration['shrink_steps']} shrink "
             f"steps ({exploration['shrinks']} smaller failures), "
             + _confirmation(exploration)
             + f"{exploration['duplicates']} repeated sequences judged from their first run",
             f"- this report is the history of run {exploration['reported_example']}"
             + (" (the smallest failure)" if "minimal_sequence" in exploration else ""),
             "- requirements judged (runs that passed or failed them): "
             + (", ".join(f"{k} {n}" for k, n in exercised.items()) or "none")]
    if "minimal_sequence" in exploration:
        sequence = exploration["minimal_sequence"]
        lines += ["", f"Minimal failing sequence ({len(sequence)} operations; replay with "
                      f"`gossipcert replay {exploration.get('replay_file')}`):", "", "```json"]
        lines += [json.dumps(op, separators=(", ", ": ")) for op in sequence]
        lines += ["```"]
    return lines


def write_markdown_report(path: Path | str, report: Mapping[str, Any]) -> str:
    """Write ``report.md`` from a report dict; returns the text written."""
    text = render_markdown(report)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return text


def write(results: RunResults) -> Path:
    """The ``markdown`` report writer (entry point of ``gossipcert.reports``)."""
    path = results.report_dir / "report.md"
    write_markdown_report(path, results.report)
    return path
