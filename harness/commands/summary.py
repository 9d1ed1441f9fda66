"""One Markdown table over many certification reports (``report.json`` files): what each
implementation is, what was certified, the verdict, and its failure-detection time
against the bound. ``gossipcert summary`` prints it; the compliance run keeps it beside
the reports it summarises."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

__all__ = ["summary_row", "summary_table"]

HEADER = ("| implementation | version (declared) | backend | certified | not certified "
          "| verdict | kill -9 detected (FD-DETECT) | report |\n"
          "|---|---|---|---|---|---|---|---|\n")


def _declared_version(report: dict[str, Any]) -> str:
    """The version the manifest declared: recorded in the report, else (a report from
    before it was recorded) read from the manifest file, if it is still there."""
    recorded = (report.get("run") or {}).get("manifest_version")
    if recorded:
        return str(recorded)
    manifest = (report.get("run") or {}).get("manifest")
    if not manifest:
        return "?"
    try:
        data = yaml.safe_load(Path(manifest).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return "?"
    return str(data.get("version", "?")) if isinstance(data, dict) else "?"


def _detection(report: dict[str, Any]) -> str:
    found = next((r for r in report.get("requirements", []) if r.get("id") == "FD-DETECT"),
                 None)
    if found is None or found.get("status") == "not-claimed":
        return "not claimed"
    if found.get("measured") is None:
        return f"{found.get('status')}"
    return (f"{found['status']}: {found['measured'] / 1000:.1f} s "
            f"(bound {found['bound'] / 1000:.1f} s)")


def summary_row(path: Path, relative_to: Path | None = None) -> str:
    """One table row for the report at ``path`` (linked relative to ``relative_to``)."""
    report = json.loads(path.read_text(encoding="utf-8"))
    cert = report.get("certificate") or {}
    certified = ", ".join(cert.get("capabilities_certified") or []) or "none"
    # What kept the certificate short: every requirement that failed or was left
    # unjudged (in error), then the claimed ones left untested.
    not_passed = [f"{r['id']} ({r['status']})" for r in report.get("requirements", [])
                  if r.get("status") in ("fail", "error")]
    not_passed += [f"{rid} (untested)" for rid in cert.get("untested") or []]
    not_certified = ", ".join(not_passed) or "-"
    link = path.with_name("report.md")
    shown = os.path.relpath(link, relative_to) if relative_to is not None else str(link)
    run = report.get("run") or {}
    return (f"| {report.get('implementation', '?')} | {_declared_version(report)} "
            f"| {run.get('backend', '?')} | {certified} | {not_certified} "
            f"| **{str(report.get('verdict', '?')).upper()}** | {_detection(report)} "
            f"| [{link.parent.name}]({shown}) |\n")


def summary_table(paths: Sequence[Path], relative_to: Path | None = None) -> str:
    """The table over ``paths``, in the order given."""
    return HEADER + "".join(summary_row(p, relative_to) for p in paths)
