"""JUnit XML (``report.junit.xml``): one test case per requirement, for any CI system.

A MUST's failure or error carries the evidence; a requirement left untested or not
claimed is skipped with its reason, so a dashboard shows it without counting it as
passed. A SHOULD that failed (or could not be judged) does not fail the run, so it is no
``<failure>`` either: a dashboard would show red while certify exits 0. Its case passes
and says what was not met in a ``should`` property and its output. The overall verdict
and the certificate are properties of the suite; every case has the wall time of the
scenario that judged it, and the suite the time the report was made.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gossipcert.harness.run.reporting import RunResults

__all__ = ["render_junit", "write", "write_junit_report"]


def _scenario_times(report: Mapping[str, Any]) -> dict[str | None, float]:
    """Wall seconds of each scenario the report ran (a suite's ``runs``), and of the
    whole run under the key None."""
    times: dict[str | None, float] = {}
    for run in report.get("runs") or []:
        if isinstance(run, Mapping) and isinstance(run.get("wall_time_s"), int | float):
            times[str(run.get("scenario"))] = float(run["wall_time_s"])
    whole = (report.get("run") or {}).get("wall_time_s")
    if isinstance(whole, int | float):
        times[None] = float(whole)
    return times


def _timestamp(generated_at: Any) -> str | None:
    """JUnit's timestamp: ISO 8601 local time without a zone (the report's is UTC)."""
    if not isinstance(generated_at, str):
        return None
    try:
        when = datetime.fromisoformat(generated_at)
    except ValueError:
        return None
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when.isoformat(timespec="seconds")


def _counts_against(req: Mapping[str, Any]) -> bool:
    """Whether a requirement's fail or error fails the run (a MUST's does)."""
    return req.get("level") != "SHOULD"


def render_junit(report: Mapping[str, Any]) -> str:
    requirements = report.get("requirements", [])
    counts = {
        s: sum(1 for r in requirements if r["status"] == s and _counts_against(r))
        for s in ("fail", "error")
    }
    skipped = sum(1 for r in requirements if r["status"] in ("untested", "not-claimed"))
    times = _scenario_times(report)
    suite = ET.Element(
        "testsuite",
        name=f"gossipcert {report.get('implementation', '?')}",
        tests=str(len(requirements)),
        failures=str(counts["fail"]),
        errors=str(counts["error"]),
        skipped=str(skipped),
    )
    if None in times:
        suite.set("time", f"{times[None]:.3f}")
    stamp = _timestamp(report.get("generated_at"))
    if stamp is not None:
        suite.set("timestamp", stamp)
    props = ET.SubElement(suite, "properties")
    for name in ("implementation", "seed", "verdict"):
        ET.SubElement(props, "property", name=name, value=str(report.get(name)))
    cert = report.get("certificate") or {}
    for name in ("contract", "capabilities_certified", "capabilities_not_claimed", "untested",
                 "scenarios"):
        value = cert.get(name)
        text = ",".join(value) if isinstance(value, list) else str(value)
        ET.SubElement(props, "property", name=f"certificate.{name}", value=text)
    failure = report.get("harness_error")
    if isinstance(failure, Mapping):
        # The harness failed: one errored case CI shows above the requirements.
        case = ET.SubElement(suite, "testcase", classname="gossipcert.harness",
                             name="the harness ran the scenarios to their end")
        ET.SubElement(case, "error", message=str(failure.get("message")), type="harness")
        suite.set("tests", str(len(requirements) + 1))
        suite.set("errors", str(counts["error"] + 1))
    for req in requirements:
        scenario = req.get("scenario") or "default"
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"gossipcert.{scenario}.{req['level']}",
            name=f"{req['id']}: {req['title']}",
            time=f"{times.get(scenario, times.get(None, 0.0)):.3f}",
        )
        evidence = req["evidence"]["summary"]
        measured = "" if req["measured"] is None else f"measured {req['measured']} "
        figure = f"{measured}bound {req['bound']} {req['unit']}".strip()
        details = json.dumps(req["evidence"]["details"], indent=2, sort_keys=True, default=str)
        status = req["status"]
        if status in ("fail", "error") and not _counts_against(req):
            # A SHOULD not met: reported, and the run (exit 0) is not failed for it.
            what = "not met" if status == "fail" else "could not be judged"
            props = ET.SubElement(case, "properties")
            ET.SubElement(props, "property", name="should", value=f"{what}: {evidence}")
            out = ET.SubElement(case, "system-out")
            out.text = f"SHOULD {what} (does not fail the run): {evidence}\n{figure}\n{details}"
            continue
        if status == "fail":
            node = ET.SubElement(case, "failure", message=evidence, type=req["level"])
            node.text = f"{figure}\n{details}"
        elif status == "error":
            ET.SubElement(case, "error", message=evidence, type="checker")
        elif status in ("untested", "not-claimed"):
            ET.SubElement(case, "skipped", message=f"{status}: {evidence}")
        out = ET.SubElement(case, "system-out")
        out.text = f"{evidence}\n{figure}"
    ET.indent(suite)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"
    )


def write_junit_report(path: Path | str, report: Mapping[str, Any]) -> Path:
    target = Path(path)
    target.write_text(render_junit(report), encoding="utf-8")
    return target


def write(results: RunResults) -> Path:
    """The ``junit`` report writer (entry point of ``gossipcert.reports``)."""
    return write_junit_report(results.report_dir / "report.junit.xml", results.report)
