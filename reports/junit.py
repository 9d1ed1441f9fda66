"""JUnit XML (``report.junit.xml``): one test case per requirement, for any CI system.

A failure or error carries the evidence; a requirement left untested or not claimed is
skipped with its reason, so a dashboard shows it without counting it as passed. The
overall verdict and the certificate are properties of the suite.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gossipcert.harness.run.reporting import RunResults

__all__ = ["render_junit", "write", "write_junit_report"]


def render_junit(report: Mapping[str, Any]) -> str:
    requirements = report.get("requirements", [])
    counts = {
        s: sum(1 for r in requirements if r["status"] == s)
        for s in ("fail", "error", "untested", "not-claimed")
    }
    suite = ET.Element(
        "testsuite",
        name=f"gossipcert {report.get('implementation', '?')}",
        tests=str(len(requirements)),
        failures=str(counts["fail"]),
        errors=str(counts["error"]),
        skipped=str(counts["untested"] + counts["not-claimed"]),
    )
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
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"gossipcert.{req.get('scenario') or 'default'}.{req['level']}",
            name=f"{req['id']}: {req['title']}",
        )
        evidence = req["evidence"]["summary"]
        measured = "" if req["measured"] is None else f"measured {req['measured']} "
        figure = f"{measured}bound {req['bound']} {req['unit']}".strip()
        details = json.dumps(req["evidence"]["details"], indent=2, sort_keys=True, default=str)
        if req["status"] == "fail":
            node = ET.SubElement(case, "failure", message=evidence, type=req["level"])
            node.text = f"{figure}\n{details}"
        elif req["status"] == "error":
            ET.SubElement(case, "error", message=evidence, type="checker")
        elif req["status"] in ("untested", "not-claimed"):
            ET.SubElement(case, "skipped", message=f"{req['status']}: {evidence}")
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
