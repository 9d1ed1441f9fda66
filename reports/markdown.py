"""The report for people: ``report.md``, readable in a pull request or a CI summary."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gossipcert.harness.judging.clock import run_time
from gossipcert.harness.judging.readable import margin_text
from gossipcert.harness.run.report import preflight_lines
from gossipcert.harness.run.reporting import RunResults

__all__ = [
    "VERDICT_MEANING",
    "certificate_lines",
    "fault_rows",
    "harness_error_text",
    "judged_text",
    "margin_text",
    "not_claimed_ids",
    "preflight_lines",
    "run_lines",
    "run_started",
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
    """The certificate as (label, text) pairs, shared by the Markdown and HTML reports.
    Every declared capability is in one list: certified, failed, not judged, or (one the
    catalogue holds no MUST requirement of) declared with nothing to certify."""
    cert: Mapping[str, Any] = report.get("certificate") or {}
    untested = list(cert.get("untested") or [])
    listed = {c for key in ("capabilities_certified", "capabilities_failed",
                            "capabilities_not_judged", "capabilities_not_claimed")
              for c in cert.get(key) or []}
    unlisted = [c for c in cert.get("capabilities_declared") or [] if c not in listed]
    return [
        ("contract", str(cert.get("contract", "?"))),
        ("capabilities certified", ", ".join(cert.get("capabilities_certified") or []) or "none"),
        *([("capabilities failed", ", ".join(cert["capabilities_failed"]))]
          if cert.get("capabilities_failed") else []),
        *([("capabilities not judged (a MUST untested or in error)",
            ", ".join(cert["capabilities_not_judged"]))]
          if cert.get("capabilities_not_judged") else []),
        *([("capabilities declared, no MUST requirement to certify", ", ".join(unlisted))]
          if unlisted else []),
        (
            "capabilities not claimed",
            ", ".join(cert.get("capabilities_not_claimed") or []) or "none",
        ),
        ("conflict policies", ", ".join(cert.get("conflict_policies") or []) or "-"),
        *timing_lines(cert.get("timing_profile") or {},
                      (report.get("run") or {}).get("manifest_timing_profile")),
        ("scenarios run", f"{', '.join(cert.get('scenarios') or [])} ({cert.get('mode', '?')})"),
        ("untested", ", ".join(untested) if untested else "none"),
    ]


def timing_lines(profile: Mapping[str, Any], named: str | None = None
                 ) -> list[tuple[str, str]]:
    """The timing the bounds were judged at and where each value came from: the profile
    the run was judged against (a ceiling, not the manifest's own profile, which
    ``named`` gives when its timing names one), then every value with its source."""
    name = str(profile.get("name", "?"))
    head = f"judged against profile {name} (its values are ceilings)"
    if named and named != name:
        head += f"; the manifest's own timing is profile {named}'s values"
    capped, floored = profile.get("capped") or {}, profile.get("floored") or {}
    defaulted = set(profile.get("defaulted") or [])

    def source(key: str) -> str:
        if key in capped:
            return f"{name} ceiling"
        if key in floored:
            return "floor"
        if key in defaulted:
            return f"{name}, not declared"
        return "declared"

    timing = profile.get("timing") or {}
    values = ", ".join(f"{k}={_number(v)} ({source(k)})" for k, v in sorted(timing.items()))
    return [("timing profile", head), ("timing judged at", values or "-"),
            *_profile_lines(profile)]


def _profile_lines(profile: Mapping[str, Any]) -> list[tuple[str, str]]:
    """What the timing profile changed: declared timing it capped or raised to a floor
    (what it filled in, :func:`timing_lines` marks)."""
    lines = []
    for key, label, judged in (("capped", "capped by the profile", "ceiling"),
                               ("floored", "raised to the floor", "floor")):
        changed = profile.get(key) or {}
        if changed:
            lines.append((label, "; ".join(
                f"{k} declared {_number(v.get('declared'))}, judged at {_number(v.get(judged))}"
                for k, v in sorted(changed.items())
            )))
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


def not_claimed_ids(report: Mapping[str, Any]) -> list[str]:
    """The requirements of capabilities the implementation does not claim: one line
    under the requirements table, not a row each."""
    return [str(r.get("id")) for r in report.get("requirements", [])
            if r.get("status") == "not-claimed"]


def run_started(run: Mapping[str, Any]) -> str:
    """When one scenario run of a suite started (UTC time of day), or ``-``."""
    started = run.get("started_at_ms")
    if not isinstance(started, int | float):
        return "-"
    return datetime.fromtimestamp(float(started) / 1000, UTC).strftime("%H:%M:%S UTC")


def run_lines(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The run's provenance as (label, text) pairs, shared by the Markdown and HTML
    reports: when it started (the origin of every relative time), what ran, on what,
    judged by which harness, and the command that runs it again."""
    run: Mapping[str, Any] = report.get("run") or {}
    started = run.get("started_at")
    lines = [("started", f"{started} ({float(run['started_at_ms']):.0f} epoch ms); every "
                         "time in this report counts from it" if started
              else "unknown (this report does not record its run's start)")]
    lines.append(("seed", str(report.get("seed"))))
    lines.append(("nodes", ", ".join(run.get("nodes") or []) or "-"))
    impl = (f"{report.get('implementation', '?')}, reported version "
            f"{run.get('implementation_version') or 'unknown'}")
    if run.get("manifest"):
        impl += f"; manifest {run['manifest']}"
        if run.get("manifest_version"):
            impl += f" (declares version {run['manifest_version']})"
        impl += f", sha256 {run.get('manifest_sha256') or 'unknown'}"
    if run.get("implementation_file"):
        impl += (f"; node {run['implementation_file']}, sha256 "
                 f"{run.get('implementation_sha256') or 'unknown'}")
    lines.append(("implementation", impl))
    planes = run.get("fault_planes")
    lines.append(("backend", f"{run.get('backend') or '-'}; fault planes used: "
                             + (", ".join(planes) if planes else
                                "none" if planes is not None else "unknown")))
    host = run.get("host")
    if isinstance(host, Mapping):
        lines.append(("host", f"{host.get('system', '?')} {host.get('kernel', '?')} "
                              f"({host.get('machine', '?')}), {host.get('cores', '?')} cores, "
                              f"Python {host.get('python', '?')}"))
    else:
        lines.append(("host", "unknown"))
    commit = run.get("gossipcert_commit")
    where = (f"commit {commit}" + (" with local changes" if run.get("gossipcert_dirty") else "")
             if commit else "commit unknown (not a git checkout)")
    lines.append(("gossipcert", f"{run.get('gossipcert_version', '?')} ({where}), control "
                                f"API contract {run.get('contract_version', '?')}"))
    lines.append(("reproduce", str(run.get("command") or "unknown")))
    if report.get("generated_at"):
        lines.append(("generated", str(report["generated_at"])))
    summary = report.get("summary")
    if summary:
        lines.append(("requirements", ", ".join(f"{n} {s}" for s, n in summary.items())))
    return lines


def _is_epoch_ms(key: str, value: Any) -> bool:
    """An absolute time in a fault's arguments (``applied_ms``), shown relative too."""
    return (key.endswith("_ms") and isinstance(value, int | float)
            and not isinstance(value, bool) and value > 1e11)


def fault_rows(report: Mapping[str, Any]) -> tuple[list[dict[str, str]], bool]:
    """The faults applied, each at seconds from its run's start (a suite's, from the
    start of the scenario run it was applied in), and whether every start was known
    (a report from before starts were recorded counts from its first fault instead)."""
    faults: Sequence[Mapping[str, Any]] = report.get("faults") or []
    starts = {str(r.get("scenario")): float(r["started_at_ms"])
              for r in report.get("runs") or [] if r.get("started_at_ms") is not None}
    own = (report.get("run") or {}).get("started_at_ms")
    exact = True
    rows = []
    for fault in faults:
        scenario = fault.get("scenario")
        origin = starts.get(str(scenario)) if scenario is not None else None
        if origin is None and scenario is None and own is not None:
            origin = float(own)
        if origin is None:
            exact = False
            origin = min(float(f["time_ms"]) for f in faults
                         if f.get("scenario") == scenario)
        args = {k: run_time(float(v), origin) if _is_epoch_ms(k, v) else v
                for k, v in (fault.get("args") or {}).items()}
        by = args.pop("mechanism", None) or "-"  # toxiproxy, iptables, nfqueue, netem
        rows.append({"at": run_time(float(fault["time_ms"]), origin),
                     "scenario": str(scenario or ""), "op": str(fault.get("op")),
                     "node": str(fault.get("node") or "-"), "by": str(by),
                     "args": json.dumps(args, sort_keys=True)})
    return rows, exact


def render_markdown(report: Mapping[str, Any]) -> str:
    """The Markdown text of a report dict (as built by :mod:`reports.json_report`)."""
    verdict = str(report.get("verdict", "fail")).upper()
    requirements: Sequence[Mapping[str, Any]] = report.get("requirements", [])
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
    lines += ["", "## Run", ""]
    lines += [f"- {label}: `{text}`" if label == "reproduce" and text != "unknown"
              else f"- {label}: {_cell(text)}" for label, text in run_lines(report)]
    runs: Sequence[Mapping[str, Any]] = report.get("runs") or []
    if runs:
        lines += [
            "",
            "## Scenario runs",
            "",
            "Each scenario run's own report (its figures, its evidence in full) is in its "
            "folder; the faults of every run are listed below. A time in a requirement's "
            "evidence counts from the start of the scenario run that judged it.",
            "",
            "| scenario | started | policy | judged | wall s | report |",
            "|---|---|---|---|---|---|",
        ]
        for r in runs:
            lines.append(
                f"| {_cell(r.get('scenario'))} | {run_started(r)} "
                f"| {_cell(r.get('conflict_policy') or '-')} "
                f"| {_cell(judged_text(r))} "
                f"| {_number(r.get('wall_time_s'))} | [{_cell(r.get('dir'))}]"
                f"({_cell(r.get('dir'))}/report.md) |"
            )
    shown = [r for r in requirements if r.get("status") != "not-claimed"]
    lines += [
        "",
        "## Requirements",
        "",
        "| id | level | scenario | status | measured of bound (margin) | evidence |",
        "|---|---|---|---|---|---|",
    ]
    for req in shown:
        evidence = req.get("evidence", {})
        lines.append(
            f"| {_cell(req.get('id'))} | {_cell(req.get('level'))} "
            f"| {_cell(req.get('scenario') or '-')} "
            f"| {_STATUS_MARK.get(str(req.get('status')), _cell(req.get('status')))} "
            f"| {_cell(margin_text(req))} | {_cell(evidence.get('summary', ''))} |"
        )
    unclaimed = not_claimed_ids(report)
    if unclaimed:
        lines += ["", f"Not claimed ({len(unclaimed)}): {', '.join(unclaimed)}."]
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
    rows, exact = fault_rows(report)
    lines += ["", "## Faults applied", ""]
    if not rows:
        lines.append("No fault was applied.")
    else:
        origin = ("its scenario run's start" if runs else "the run's start") if exact \
            else "the first fault (this report does not record its run's start)"
        lines += [f"Times in seconds from {origin}.", ""]
        scenario_col = bool(runs)
        lines += ["| " + ("scenario | " if scenario_col else "") + "t | fault | node | by | args |",
                  "|" + ("---|" if scenario_col else "") + "---|---|---|---|---|"]
        for row in rows:
            lines.append(
                "| " + (f"{_cell(row['scenario'])} | " if scenario_col else "")
                + f"{row['at']} | {_cell(row['op'])} | {_cell(row['node'])} "
                f"| {_cell(row['by'])} | `{_cell(row['args'])}` |"
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
