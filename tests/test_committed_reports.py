"""The committed compliance reports, read as an auditor reads them: every HTML page opened
in headless Chromium and every Markdown file's links followed on disk, none leading
nowhere; the certificates say what each implementation claimed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from headless_browser import chromium, open_pages
from host_tools import need

ROOT = Path(__file__).resolve().parent.parent
COMPLIANCE = ROOT / "compliance"
PAGES = sorted(COMPLIANCE.glob("**/report.html"))
REPORTS = sorted(COMPLIANCE.glob("*/report.json"))
# Capabilities the catalogue has requirements for (``events`` and ``metrics`` are
# extensions the harness reads through; nothing certifies them).
JUDGED_CAPABILITIES = {
    r["capability"]
    for r in yaml.safe_load((ROOT / "specs/requirements.yaml").read_text())["requirements"]
}


def test_there_are_committed_reports() -> None:
    assert len(REPORTS) >= 5 and len(PAGES) >= len(REPORTS)


def test_every_committed_html_report_opens_in_chromium_without_a_dangling_link(
    tmp_path: Path,
) -> None:
    need(None if chromium() else "chromium is not installed (apt-get install -y chromium)")
    pages = open_pages(PAGES, tmp_path / "profile")
    assert len(pages) == len(PAGES)
    problems = {}
    for page in pages:
        found = page.dangling() + page.errors
        if not page.title.startswith("gossipcert report"):
            found.append(f"title {page.title!r}")
        if page.svgs == 0:
            found.append("no figure drawn")
        if found:
            problems[str(page.path.relative_to(ROOT))] = found
    assert not problems, json.dumps(problems, indent=1)


@pytest.mark.parametrize("report", REPORTS, ids=lambda p: p.parent.name)
def test_every_claimed_capability_is_accounted_for(report: Path) -> None:
    """A claimed capability is certified, failed or not judged: never missing."""
    data = json.loads(report.read_text(encoding="utf-8"))
    cert = data["certificate"]
    declared = set(cert["capabilities_declared"]) & JUDGED_CAPABILITIES
    shown = (set(cert.get("capabilities_certified") or [])
             | set(cert.get("capabilities_failed") or [])
             | set(cert.get("capabilities_not_judged") or []))
    assert declared, report
    assert declared <= shown, (report, sorted(declared - shown))
    if report.parent.name == "serf":
        assert "failure-detection" in shown
        assert "failure-detection" in (report.parent / "report.md").read_text(encoding="utf-8")
