"""The machine-readable report: ``report.json``, the file a CI job gates on.

Its shape is ``specs/report.schema.json``; :func:`write_json_report` validates against it
before writing, so a report that a tool downstream cannot read is never produced.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
from gossipcert.harness.history import Entry
from gossipcert.harness.verdict import STATUSES, Verdict, overall_verdict
from gossipcert.specs import spec_path

__all__ = ["REPORT_VERSION", "build_report", "load_report_schema", "write_json_report"]

REPORT_VERSION = 1


def load_report_schema() -> dict[str, Any]:
    with spec_path("report.schema.json").open(encoding="utf-8") as f:
        schema: dict[str, Any] = json.load(f)
    return schema


def _gossipcert_version() -> str:
    from gossipcert.harness import __version__

    return str(__version__)


def _jsonable(value: Any) -> Any:
    """Plain JSON: tuples to lists, non-finite floats to strings (JSON has no Infinity)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _fault(fault: Entry | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(fault, Entry):
        return {"time_ms": fault.time_ms, "op": fault.op, "node": fault.node, "args": fault.args}
    return {
        "time_ms": float(fault["time_ms"]),
        "op": str(fault["op"]),
        "node": fault.get("node"),
        "args": dict(fault.get("args") or {}),
    }


def build_report(
    *,
    implementation: str,
    seed: int | str | None,
    verdicts: Sequence[Verdict],
    faults: Iterable[Entry | Mapping[str, Any]],
    run: Mapping[str, Any],
    certificate: Mapping[str, Any],
    runs: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The report as a dict (what :func:`write_json_report` writes): ``certificate``
    says what it certifies (:func:`harness.suite.certificate`), ``runs`` lists a suite's
    scenario runs."""
    counts = Counter(v.status for v in verdicts)
    run_info = dict(run)
    run_info.setdefault("gossipcert_version", _gossipcert_version())
    report = {
        "report_version": REPORT_VERSION,
        "implementation": implementation,
        "verdict": overall_verdict(verdicts),
        "certificate": dict(certificate),
        "seed": seed,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "summary": {status: counts.get(status, 0) for status in STATUSES},
        "faults": sorted((_fault(f) for f in faults), key=lambda f: f["time_ms"]),
        "requirements": [v.to_dict() for v in verdicts],
        "run": run_info,
    }
    if runs is not None:
        report["runs"] = [dict(r) for r in runs]
    out: dict[str, Any] = _jsonable(report)
    return out


def write_json_report(
    path: Path | str,
    *,
    implementation: str,
    seed: int | str | None,
    verdicts: Sequence[Verdict],
    faults: Iterable[Entry | Mapping[str, Any]],
    run: Mapping[str, Any],
    certificate: Mapping[str, Any],
    runs: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Build, validate and write ``report.json``; returns the report dict."""
    report = build_report(
        implementation=implementation,
        seed=seed,
        verdicts=verdicts,
        faults=faults,
        run=run,
        certificate=certificate,
        runs=runs,
    )
    jsonschema.validate(report, load_report_schema())
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return report
