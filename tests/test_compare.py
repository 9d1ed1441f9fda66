"""``gossipcert compare``: several reports side by side, the page committed as
``compliance/README.md``, and one clear line for a directory that holds no report."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from gossipcert.harness.commands.cli import main
from gossipcert.harness.commands.compare import cell

REPO = Path(__file__).resolve().parent.parent
COMPLIANCE = REPO / "compliance"


def test_compare_writes_the_committed_compliance_page(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`gossipcert compare compliance/*/ --markdown compliance/README.md` writes exactly the
    committed page, its links resolving beside it; stdout gets the same Markdown."""
    monkeypatch.chdir(REPO)
    dirs = sorted(str(p.parent.relative_to(REPO)) + "/" for p in COMPLIANCE.glob("*/report.json"))
    out = tmp_path / "compliance" / "README.md"
    shutil.copytree(COMPLIANCE, tmp_path / "compliance", dirs_exist_ok=True)
    monkeypatch.chdir(tmp_path)
    assert main(["compare", *dirs, "--markdown", str(out), "--html", "page.html"]) == 0
    written = out.read_text(encoding="utf-8")
    assert written == (COMPLIANCE / "README.md").read_text(encoding="utf-8")
    for link in re.findall(r"\]\(([^)]+)\)", written):
        assert (out.parent / link).is_file(), link
    page = (tmp_path / "page.html").read_text(encoding="utf-8")
    for link in re.findall(r'href="([^"]+)"', page):
        assert (tmp_path / link).is_file(), link
    assert 'class="c fail"' in page and "<script" not in page
    assert main(["compare", *dirs]) == 0
    printed = capsys.readouterr().out
    assert "| FD-DETECT | MUST |" in printed and "](compliance/serf/report.md)" in printed


def test_compare_cells_show_the_margin() -> None:
    assert cell({"status": "pass", "measured": 1600.0, "bound": 13200.0, "unit": "ms"}) == \
        "PASS 1.6 s / 13.2 s"
    assert cell({"status": "fail", "measured": 2.0, "bound": 0.0, "unit": "count"}) == \
        "FAIL 2 (at most 0)"
    assert cell({"status": "untested", "measured": None, "bound": 75, "unit": "messages"}) == \
        "UNTESTED"
    assert cell({"status": "not-claimed"}) == cell(None) == "-"


@pytest.mark.parametrize("content, message", [
    (None, "holds no report.json"),
    ("{", "is not valid JSON"),
    ('{"verdict": "pass"}', "is not a gossipcert report"),
])
def test_compare_refuses_what_is_not_a_report(tmp_path: Path, content: str | None,
                                             message: str) -> None:
    if content is not None:
        (tmp_path / "report.json").write_text(content)
    result = subprocess.run([sys.executable, "-m", "gossipcert.harness.commands.cli", "compare",
                             str(COMPLIANCE / "serf"), str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stdout == "", result
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
