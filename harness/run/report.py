"""A run's report as data: what ``report.json`` holds and every report writer renders.

Its shape is ``specs/report.schema.json``. The harness builds it from the verdicts
(:func:`build_report`); the writers in ``reports/`` only render it (the JSON writer
validates it against the schema before writing, so a report that a tool downstream
cannot read is never produced).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from gossipcert.harness.history import Entry
from gossipcert.harness.judging.verdict import STATUSES, Verdict, overall_verdict
from gossipcert.specs import gossipcert_version, spec_path

__all__ = ["REPORT_VERSION", "build_report", "load_report_schema", "preflight_lines"]

REPORT_VERSION = 1


def load_report_schema() -> dict[str, Any]:
    with spec_path("report.schema.json").open(encoding="utf-8") as f:
        schema: dict[str, Any] = json.load(f)
    return schema


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
    harness_error: Mapping[str, Any] | None = None,
    preflight: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The report as a dict: ``certificate`` says what it certifies
    (:func:`harness.run.suite.certificate`), ``runs`` lists a suite's scenario runs,
    ``preflight`` the scenarios this machine could not run and the steps it moved to
    another fault plane (:mod:`harness.run.preflight`).

    ``harness_error`` (message, scenario, kind): the harness's own parts failed and cut
    the run short. The verdict is then ``error`` and the report certifies nothing; the
    requirements show what was observed until then."""
    counts = Counter(v.status for v in verdicts)
    run_info = dict(run)
    run_info.setdefault("gossipcert_version", gossipcert_version())
    cert = dict(certificate)
    if harness_error is not None:
        cert["capabilities_certified"] = []
    report = {
        "report_version": REPORT_VERSION,
        "implementation": implementation,
        "verdict": "error" if harness_error is not None else overall_verdict(verdicts),
        "certificate": cert,
        "seed": seed,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "summary": {status: counts.get(status, 0) for status in STATUSES},
        "faults": sorted((_fault(f) for f in faults), key=lambda f: f["time_ms"]),
        "requirements": [v.to_dict() for v in verdicts],
        "run": run_info,
    }
    if runs is not None:
        report["runs"] = [dict(r) for r in runs]
    if harness_error is not None:
        report["harness_error"] = dict(harness_error)
    if preflight and (preflight.get("skipped") or preflight.get("notes")):
        report["preflight"] = {"skipped": [dict(s) for s in preflight.get("skipped") or []],
                               "notes": [dict(n) for n in preflight.get("notes") or []]}
    out: dict[str, Any] = _jsonable(report)
    return out


def preflight_lines(report: Mapping[str, Any]) -> list[str]:
    """What this machine could not give the run (``preflight``): one line per skipped
    scenario and per step moved to another fault plane; empty when nothing was missing."""
    found: Mapping[str, Any] = report.get("preflight") or {}
    lines = [f"scenario {s.get('scenario')} skipped: {s.get('reason')}"
             for s in found.get("skipped") or []]
    lines += [f"scenario {n.get('scenario')}: {n.get('note')}" for n in found.get("notes") or []]
    return lines
