"""The machine-readable report: ``report.json``, the file a CI job gates on.

The harness builds the report (:func:`harness.run.report.build_report`); this writer
validates it against ``specs/report.schema.json`` before writing, so a report that a tool
downstream cannot read is never produced.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
from gossipcert.harness.run.report import load_report_schema
from gossipcert.harness.run.reporting import RunResults

__all__ = ["render_json", "write", "write_json_report"]


def render_json(report: Mapping[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=False) + "\n"


def write_json_report(path: Path | str, report: Mapping[str, Any]) -> Path:
    """Validate ``report`` against its schema and write it."""
    jsonschema.validate(dict(report), load_report_schema())
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_json(report), encoding="utf-8")
    return target


def write(results: RunResults) -> Path:
    """The ``json`` report writer (entry point of ``gossipcert.reports``)."""
    return write_json_report(results.report_dir / "report.json", results.report)
